"""The public API: build a model, load and save its weights."""

from __future__ import annotations

import ml_collections
from flax import nnx

from jdsr.convert import load_checkpoint, load_pytorch, save_checkpoint, save_pytorch
from jdsr.model import JDSR

__all__ = ['build_model', 'load_checkpoint', 'load_pytorch', 'save_checkpoint', 'save_pytorch']


def build_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs | int = 0) -> JDSR:
  """A freshly initialised model.

  ``config`` is a model config (``jdsr.model_config()``) or an experiment
  config with a ``model`` field (``configs/*.py``'s ``get_config()``).
  """
  if 'model' in config:
    config = config.model
  if isinstance(rngs, int):
    rngs = nnx.Rngs(rngs)
  return JDSR(config, rngs=rngs)
