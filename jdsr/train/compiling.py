"""A training run's compiled programs, built once per structure; compiling before the first run.

``programs`` builds a run's init, step and predict functions once per model
structure, phase and optimizer settings in a process (learning rates are the
step's arguments, so they are not part of the key).

XLA frees most of what it allocates while compiling, but glibc's malloc keeps
those freed pages (they are scattered among live ones) and the step's buffers
then come on top of them: compiling the phase-3 training step left 2.2 GiB
resident where 1.5 GiB were in use, and the first step peaked at 5.7 GiB
instead of 5.0 GiB. ``compile_on_first_call`` compiles, hands the free pages
back (``malloc_trim``), and only then runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import json
from typing import Any, Callable

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from jdsr.nn import xla_options
from jdsr.nn.model import JDSR
from jdsr.train import phases


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
  name = ctypes.util.find_library('c')
  try:
    return ctypes.CDLL(name).malloc_trim if name else None
  except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
    return None


def release_free_memory() -> bool:
  """Hand the C heap's free pages back to the OS; False where the C library cannot."""
  trim = _malloc_trim()
  return bool(trim and trim(0))


def _signature(args: tuple) -> tuple:
  """What an executable is compiled for: the arguments' tree, shapes, dtypes and shardings."""
  leaves, tree = jax.tree.flatten(args)
  return tree, tuple((np.shape(x), getattr(x, 'dtype', type(x)), getattr(x, 'sharding', None),
                      getattr(x, 'weak_type', False)) for x in leaves)


def compile_on_first_call(jitted: Any) -> Callable:
  """``jitted`` (a ``jax.jit`` function), compiled for the arguments of its first call.

  The first call with arguments of a new signature (shapes, dtypes, shardings)
  lowers and compiles (with the backend's options, ``jdsr.nn.xla_options``,
  and through the persistent compilation cache when one is set), releases the
  compiler's freed memory, then runs; later calls with that signature run the
  same executable. A training loop's batches all have one.
  """
  compiled = {}

  def call(*args):
    key = _signature(args)
    if key not in compiled:
      compiled[key] = jitted.lower(*args).compile(xla_options.compiler_options() or None)
      release_free_memory()
    return compiled[key](*args)

  return call


# -- a training run's programs ------------------------------------------------------


def mesh() -> jax.sharding.Mesh:
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


@dataclasses.dataclass(frozen=True)
class Programs:
  """A run's compiled functions: ``init(params)``, ``step(state, batch, rates)``, ``predict(params, x)``."""
  init: Callable
  step: Callable
  predict: Callable


_PROGRAMS: dict[tuple, Programs] = {}
_KEEP_PROGRAMS = 16  # structures whose programs a process keeps (the oldest go first)


def programs(model: JDSR, phase_name: str, adam: tuple, remat: bool, microbatches: int,
             mesh: jax.sharding.Mesh) -> Programs:
  """The jitted functions of a run on ``model``'s structure, built once per structure in a process.

  Everything a program depends on is a key here: the model's config (its
  architecture and compute settings), the phase, Adam's settings, remat, the
  microbatches and the mesh. Learning rates and the schedule's length are not
  (they are fed to the step), so runs that differ only in them, or that are run
  again in one process, share one program: no new trace, no new compile.
  """
  key = (json.dumps(dict(model.config), sort_keys=True), phase_name, adam, remat, microbatches,
         mesh)
  if key not in _PROGRAMS:
    if len(_PROGRAMS) >= _KEEP_PROGRAMS:
      _PROGRAMS.pop(next(iter(_PROGRAMS)))
    _PROGRAMS[key] = _build_programs(nnx.graphdef(model), *key[1:])
  return _PROGRAMS[key]


def _build_programs(graphdef: nnx.GraphDef, phase_name: str, adam: tuple, remat: bool,
                    microbatches: int, mesh: jax.sharding.Mesh) -> Programs:
  phase = phases.get(phase_name)
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  tx = phases.optimizer(*adam)
  init = jax.jit(lambda p: phases.init_state(p, phase, tx), out_shardings=replicated)
  step = compile_on_first_call(jax.jit(
      phases.make_train_step(graphdef, phase, tx, remat, microbatches),
      in_shardings=(replicated, sharded, replicated), out_shardings=(replicated, replicated),
      donate_argnums=0))
  predict_fn = jax.jit(lambda p, x: phase.predict(nnx.merge(graphdef, p), x),
                       compiler_options=xla_options.compiler_options() or None)
  # The image goes in replicated, as the parameters are: one global array on every host.
  predict = lambda p, x: predict_fn(p, jax.device_put(x, replicated))
  return Programs(init=init, step=step, predict=predict)
