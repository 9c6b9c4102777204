"""The public API: build a model, load and save its weights."""

from __future__ import annotations

import functools
import math

import jax
import ml_collections
import numpy as np
from flax import nnx

from jdsr.convert import (abstract_model, load_checkpoint, load_pytorch, save_checkpoint,
                          save_pytorch)
from jdsr.model import JDSR

__all__ = ['apply', 'build_model', 'load_checkpoint', 'load_pytorch', 'save_checkpoint', 'save_pytorch']


def build_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs | int = 0) -> JDSR:
  """A freshly initialised model.

  ``config`` is a model config (``jdsr.model_config()``) or an experiment
  config with a ``model`` field (``configs/*.py``'s ``get_config()``).

  The convolutions get PyTorch's default initialisation, U(±1/sqrt(fan_in)),
  and the shared PReLU 0.25, as in the official code. The weights are drawn
  with NumPy from one seed: initialising layer by layer with jax.random
  compiles one random-number program per tensor shape (half a minute here),
  and drawing all 34M weights in one program needs several copies of them.
  ``rngs``: an integer seed, or an ``nnx.Rngs`` whose ``params`` stream gives one.
  """
  if 'model' in config:
    config = config.model
  if isinstance(rngs, nnx.Rngs):
    rngs = int(jax.random.randint(rngs.params(), (), 0, 2**31 - 1))
  rng = np.random.default_rng(rngs)
  model = abstract_model(config)
  flat = []
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    if len(var.shape) >= 4:  # (stack..., kh, kw, in, out) convolution kernel
      bound = 1.0 / math.sqrt(math.prod(var.shape[-4:-1]))
      value = rng.uniform(-bound, bound, var.shape).astype(np.float32)
    else:  # the shared PReLU slope
      value = np.full(var.shape, 0.25, np.float32)
    flat.append((path, var.replace(jax.numpy.asarray(value))))
  nnx.update(model, nnx.from_flat_state(flat))
  return model


@functools.partial(nnx.jit, static_argnames='tlsc', graph=False)
def apply(model: JDSR, x: jax.Array, tlsc=None) -> tuple[list[jax.Array], jax.Array]:
  """``model(x, tlsc=tlsc)``, jit-compiled (once per input shape and TLSC setting).

  Tree-mode ``nnx.jit``: the model goes in as a plain pytree of parameters and
  nothing comes back but the images, which saves a copy of the weights per
  call (250 MB less peak memory than graph mode for the default model).
  """
  return model(x, tlsc=tlsc)
