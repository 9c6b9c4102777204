"""The public API: build a model, load and save its weights."""

from __future__ import annotations

import math

import jax
import ml_collections
from flax import nnx

from jdsr.convert import (abstract_model, load_checkpoint, load_pytorch, save_checkpoint,
                          save_pytorch)
from jdsr.model import JDSR

__all__ = ['build_model', 'load_checkpoint', 'load_pytorch', 'save_checkpoint', 'save_pytorch']


def build_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs | int = 0) -> JDSR:
  """A freshly initialised model.

  ``config`` is a model config (``jdsr.model_config()``) or an experiment
  config with a ``model`` field (``configs/*.py``'s ``get_config()``).

  The convolutions get PyTorch's default initialisation, U(±1/sqrt(fan_in)),
  and the shared PReLU 0.25, as in the official code. All of it comes from one
  random draw, which compiles in well under a second (initialising layer by
  layer compiles one random-number program per tensor shape: half a minute).
  ``rngs``: an ``nnx.Rngs`` (its ``params`` stream is used) or an integer seed.
  """
  if 'model' in config:
    config = config.model
  key = rngs.params() if isinstance(rngs, nnx.Rngs) else jax.random.key(rngs)
  model = abstract_model(config)
  state = nnx.state(model, nnx.Param)
  nnx.update(model, _init(key, state))
  return model


@jax.jit
def _init(key: jax.Array, state: nnx.State) -> nnx.State:
  leaves, treedef = jax.tree.flatten(state)
  sizes = [math.prod(leaf.shape) for leaf in leaves]
  draw = jax.random.uniform(key, (sum(sizes),), minval=-1.0, maxval=1.0)
  out, start = [], 0
  for leaf, size in zip(leaves, sizes):
    if leaf.ndim >= 4:  # (stack..., kh, kw, in, out) convolution kernel
      fan_in = math.prod(leaf.shape[-4:-1])
      out.append(draw[start:start + size].reshape(leaf.shape) / math.sqrt(fan_in))
    else:  # the shared PReLU slope
      out.append(jax.numpy.full(leaf.shape, 0.25, leaf.dtype))
    start += size
  return jax.tree.unflatten(treedef, out)
