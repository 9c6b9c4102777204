"""Per-compilation XLA options: the CPU tuning of the network's programs.

XLA's CPU backend hands matrix products to YNNPACK by default; its own emitter is
faster for the Winograd convolutions' batches of 36 small products
(``xla_cpu_experimental_ynn_fusion_type`` empty: no YNNPACK fusions). On an AMD
EPYC with 2 cores that took the phase-3 step from 11.2 s to about 10 s and the
176×320 forward pass from 11.5 s to 10.5 s (docs/performance.md).

The options go to each compilation (``jax.jit(..., compiler_options=...)``,
``lowered.compile(compiler_options)``), never to ``XLA_FLAGS``: importing jdsr
changes no process-wide setting. They apply on the CPU backend only, and only
the options that the running jaxlib knows (an unknown one is dropped, not an
error). An ``XLA_FLAGS`` that names an option wins: it is then left out here.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

CPU_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': ''}


def compiler_options() -> dict[str, str]:
  """The options for a compilation on the default backend (empty off the CPU)."""
  return dict(_options(jax.default_backend(), os.environ.get('XLA_FLAGS', '')))


@functools.cache
def _options(backend: str, xla_flags: str) -> tuple[tuple[str, str], ...]:
  if backend != 'cpu':
    return ()
  return tuple((name, value) for name, value in CPU_OPTIONS.items()
               if f'--{name}' not in xla_flags and _known(name, value))


def _known(name: str, value: str) -> bool:
  """Whether this jaxlib's XLA takes ``name=value`` (compiles a one-op program with it)."""
  try:
    jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(np.float32(0)).compile()
  except Exception:  # noqa: BLE001 - XLA: "No such compile option", or an invalid value
    return False
  return True
