"""jdsr: joint motion deblurring and ×4 super-resolution (Shoyan, 2021) in JAX/Flax NNX.

    model = jdsr.load(jdsr.DEMO_MODEL)            # any checkpoint: .pth, jdsr, training workdir
    stage_images, sr = jdsr.apply(model, x)       # jit-compiled model(x)
    jdsr.save(model, 'exported.pth')              # official format (or a jdsr checkpoint dir)

The names below are imported on first use, so that ``import jdsr.config`` (what
the command lines need to parse their flags) does not load JAX.
"""

import importlib
import pathlib

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
