"""jdsr: joint motion deblurring and ×4 super-resolution (Shoyan, 2021) in JAX/Flax NNX.

    model = jdsr.load(jdsr.DEMO_MODEL)            # any checkpoint: .pth, jdsr, training workdir
    stage_images, sr = jdsr.apply(model, x)       # jit-compiled model(x)
    jdsr.save(model, 'exported.pth')              # official format (or a jdsr checkpoint dir)

The names below are imported on first use, so that ``import jdsr.config`` (what
the command lines need to parse their flags) does not load JAX.
"""

import importlib
import os
import pathlib

# XLA's CPU backend computes matrix products fused by YNNPACK by default; its own emitter
# is faster for the Winograd products here (batches of 36 small GEMMs): the phase-3 step
# 11.2 s -> 9.7 s, the 176x320 forward 11.5 s -> 10.5 s (AMD EPYC, 2 cores). Set before
# JAX starts its backend (the first computation); an XLA_FLAGS that names this flag wins.
# README's "Performance" has the measurements.
_YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
if _YNN_FLAG not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {_YNN_FLAG}='.strip()

# The demo model that ships inside the package (a jdsr checkpoint; MODEL_CARD.md beside it).
DEMO_MODEL = pathlib.Path(__file__).parent / 'models' / 'demo'

_EXPORTS = {
    'CheckpointError': 'jdsr.errors', 'load': 'jdsr.checkpoints', 'save': 'jdsr.checkpoints',
    'model_config': 'jdsr.config', 'tiny_model_config': 'jdsr.config',
    'apply': 'jdsr.inference.forward', 'TLSC': 'jdsr.nn.layers', 'JDSR': 'jdsr.nn.model',
    'build_model': 'jdsr.nn.model',
}
__all__ = sorted([*_EXPORTS, 'DEMO_MODEL'])


def __getattr__(name: str):
  if name in _EXPORTS:
    return getattr(importlib.import_module(_EXPORTS[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
