"""Mixed precision (config.model.dtype = 'bfloat16'): bfloat16 convolutions, float32 everything else."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jdsr
from configs import tiny
from jdsr.nn import layers
from jdsr.train import phases
from jdsr.inference import restore
from jdsr.nn.model import with_compute
from tests import reference


def _psnr(a, b) -> float:
  return float(10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _convs(model, x) -> list:
  """The (input, kernel) shaped arrays of every XLA convolution of ``model(x)``, scans and jits included."""
  graphdef, state = nnx.split(model)
  jaxpr = jax.make_jaxpr(lambda state, x: nnx.merge(graphdef, state)(x)[1])(state, x)
  found = []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == 'conv_general_dilated':
        found.append((eqn.invars[0].aval, eqn.invars[1].aval))
      for param in eqn.params.values():  # the bodies of scans, jits, ...
        inner = getattr(param, 'jaxpr', param)
        if hasattr(inner, 'eqns'):
          walk(inner)

  walk(jaxpr.jaxpr)
  return found


def _conv_operand_dtypes(model, x) -> set[str]:
  return {str(lhs.dtype) for lhs, _ in _convs(model, x)}


def test_bf16_forward_of_the_default_model_is_within_40_db_of_fp32(golden_model):
  x = jnp.asarray(reference.load('golden_forward.npz')['input'].transpose(0, 2, 3, 1))
  bf16 = with_compute(golden_model, dtype='bfloat16')
  assert bf16.config['dtype'] == 'bfloat16' and golden_model.config['dtype'] == 'float32'
  # The same weights, in float32: only the computation changes.
  for a, b in zip(jax.tree.leaves(nnx.state(golden_model)), jax.tree.leaves(nnx.state(bf16))):
    assert b.dtype == jnp.float32 and a is b
  fp32_sr, bf16_sr = jdsr.apply(golden_model, x)[1], jdsr.apply(bf16, x)[1]
  assert bf16_sr.dtype == jnp.float32
  assert not np.array_equal(fp32_sr, bf16_sr)  # it did compute in bfloat16
  assert _psnr(fp32_sr, bf16_sr) >= 40.0


def _default_model_convs():
  config = jdsr.model_config(**{**jdsr.tiny_model_config(), 'n_feat': 16, 'sr_feat': 16})
  return _convs(jdsr.build_model(config), jnp.zeros((1, 16, 16, 3), jnp.float32))


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason="'auto' picks Winograd on CPUs only")
def test_fp32_wide_convolutions_take_the_winograd_path_on_cpu():
  """On CPU the default ('auto') float32 model computes its 16+-channel 3×3 convolutions by Winograd."""
  convs = _default_model_convs()
  # Only the image convolutions (3 channels in or out) stay XLA convolutions.
  assert convs and all(3 in (kernel.shape[2], kernel.shape[3]) for _, kernel in convs), convs


@pytest.mark.skipif(jax.default_backend() == 'cpu', reason="'auto' picks Winograd on CPUs")
def test_off_the_cpu_every_convolution_is_xla():
  """On GPUs and TPUs the default ('auto') model takes XLA's convolutions, wide ones included."""
  convs = _default_model_convs()
  assert any(kernel.shape[2] >= 16 and kernel.shape[3] >= 16 for _, kernel in convs), convs


def test_bf16_convolutions_take_bf16_operands_and_fp32_stays_fp32():
  model = jdsr.build_model(jdsr.tiny_model_config())
  x = jnp.zeros((1, 16, 16, 3), jnp.float32)
  assert _conv_operand_dtypes(model, x) == {'float32'}
  assert _conv_operand_dtypes(with_compute(model, dtype='bfloat16'), x) == {'bfloat16'}
  assert with_compute(model, dtype='float32') is model
  with pytest.raises(ValueError, match='winograd.*float32'):
    layers.conv(16, 16, 3, impl='winograd', dtype='bfloat16', rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='dtype must be one of'):
    jdsr.build_model(jdsr.model_config(**{**jdsr.tiny_model_config(), 'dtype': 'float16'}))
  with pytest.raises(ValueError, match='not compute settings'):
    with_compute(model, n_feat=4)


@pytest.mark.slow
def test_bf16_training_step_lowers_the_loss():
  config = tiny.get_config()
  config.model.dtype = 'bfloat16'
  model = jdsr.build_model(config.model, 0)
  graphdef, params = nnx.split(model, nnx.Param)
  phase = phases.get('joint')
  tx = phases.make_optimizer(config)
  state = phases.init_state(params, phase, tx)
  step = jax.jit(phases.make_train_step(graphdef, phase, tx))
  rng = np.random.default_rng(0)
  sharp_hr = rng.random((2, 64, 64, 3), np.float32)
  sharp_lr = sharp_hr.reshape(2, 16, 4, 16, 4, 3).mean(axis=(2, 4))
  batch = {'blur_lr': sharp_lr, 'sharp_lr': sharp_lr, 'sharp_hr': sharp_hr,
           'weight': np.ones(2, np.float32)}
  rates = phases.rates_at(phases.learning_rates(config), 1)
  losses = []
  for _ in range(6):
    state, out = step(state, batch, rates)
    losses.append(float(out['loss']))
  # Each step on the same batch lowers the loss (at the paper's learning rate of 1e-4).
  assert all(np.isfinite(losses)) and all(b < a for a, b in zip(losses, losses[1:])), losses
  assert losses[-1] < losses[0] - 0.02, losses
  # Parameters, optimizer state and loss stay float32.
  floats = [leaf.dtype for leaf in jax.tree.leaves((state.params, state.opt_state))
            if jnp.issubdtype(leaf.dtype, jnp.floating)]
  assert set(floats) == {jnp.dtype('float32')} and out['loss'].dtype == jnp.float32


@pytest.mark.slow
def test_restore_and_eval_take_the_dtype():
  model = jdsr.load(jdsr.DEMO_MODEL)
  image = np.random.default_rng(0).random((24, 32, 3)).astype(np.float32)
  fp32 = restore.restore(model, image, restore.Options(tlsc=None))
  bf16 = restore.restore(model, image, restore.Options(tlsc=None, dtype='bfloat16'))
  assert not np.array_equal(fp32, bf16) and _psnr(fp32, bf16) >= 40.0
  assert restore.Options(dtype='bfloat16').model(model).config['dtype'] == 'bfloat16'
  assert restore.Options().model(model) is model
  from configs import eval_default
  config = eval_default.get_config()
  assert restore.Options.from_config(config).dtype is None  # the model's own (float32)
  config.dtype = 'bfloat16'
  assert restore.Options.from_config(config).dtype == 'bfloat16'
