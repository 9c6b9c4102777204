"""The whole network against the official implementation's numbers."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from flax import nnx

import jdsr
from jdsr import convert
from tests import reference

TOL = 1e-4  # ../shared/reference/README.md: a right port agrees well within 1e-4
OUTPUTS = ('stage3_img', 'stage2_img', 'stage1_img')


def _forward(model, x, tlsc=None):
  return jdsr.apply(model, x, tlsc=tlsc)


def _check(golden, images, sr):
  for name, got in zip(OUTPUTS, images):
    np.testing.assert_allclose(got, reference.nchw_to_nhwc(golden[name]), rtol=0, atol=TOL,
                               err_msg=name)
  np.testing.assert_allclose(sr, reference.nchw_to_nhwc(golden['sr']), rtol=0, atol=TOL,
                             err_msg='sr')


def _count(config):
  model = convert.abstract_model(config)
  return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_parameter_count_is_the_papers():
  assert _count(jdsr.model_config()) == 34_116_641


def test_ablation_configs():
  from configs import baseline, default, model1
  full = _count(default.get_config().model)
  group = 10 * (2 * 64 * 64 * 9 + 4 * 64 * 8) + 64 * 64 * 9
  assert _count(model1.get_config().model) == full - 5 * group
  assert _count(baseline.get_config().model) == full - 17 * group


def test_golden_forward(golden_model):
  golden = reference.load('golden_forward.npz')
  _check(golden, *_forward(golden_model, reference.nchw_to_nhwc(golden['input'])))


def test_golden_forward_with_tlsc(golden_model):
  golden = reference.load('golden_tlsc.npz')
  x = reference.nchw_to_nhwc(golden['input'])
  images, sr = _forward(golden_model, x, jdsr.TLSC())
  _check(golden, images, sr)
  # TLSC really changes the result at this size (about 3e-3 on sr).
  assert np.abs(_forward(golden_model, x)[1] - sr).max() > 10 * TOL


@pytest.mark.parametrize('impl', ['xla', 'winograd'])
def test_golden_forward_each_conv_impl(golden_pth, impl):
  model = jdsr.load_pytorch(golden_pth, jdsr.model_config(conv_impl=impl))
  golden = reference.load('golden_forward.npz')
  _check(golden, *_forward(model, reference.nchw_to_nhwc(golden['input'])))


def test_deblur_alone_gives_the_stage_images(golden_model):
  golden = reference.load('golden_forward.npz')
  images, feat = nnx.jit(lambda m, x: m.deblur(x))(
      golden_model, reference.nchw_to_nhwc(golden['input']))
  assert feat.shape == (1, 64, 96, 128)
  for name, got in zip(OUTPUTS, images):
    np.testing.assert_allclose(got, reference.nchw_to_nhwc(golden[name]), atol=TOL)


@pytest.mark.parametrize('shape, message', [
    ((1, 60, 96, 3), '60x96'),
    ((1, 64, 90, 3), '64x90'),
    ((1, 64, 96, 4), 'shape'),
    ((64, 96, 3), 'shape'),
])
def test_bad_input_is_rejected_clearly(shape, message):
  model = convert.abstract_model(jdsr.tiny_model_config())
  with pytest.raises(ValueError, match=message):
    model(jnp.zeros(shape))


@nnx.jit
@nnx.grad
def _grad(model, x):
  images, sr = model(x)
  return sum(jnp.mean(i ** 2) for i in images) + jnp.mean(sr ** 2)


def _zero_gradients(model, x):
  grads = _grad(model, x)
  return {jax.tree_util.keystr(p) for p, g in jax.tree_util.tree_leaves_with_path(grads)
          if not np.any(np.asarray(g))}


def test_tiny_model_runs_and_trains_every_part():
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=1)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 24, 3))
  images, sr = nnx.jit(lambda m, x: m(x))(model, x)
  assert [i.shape for i in images] == [(2, 16, 24, 3)] * 3 and sr.shape == (2, 64, 96, 3)
  assert not any('act' in p for p in _zero_gradients(model, x))  # the shared PReLU learns
  # Positive weights and inputs keep every ReLU alive, so that a parameter
  # without gradient can only be one the forward pass does not use (the
  # PReLU then sees no negative input: it is checked above).
  for _, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    var[...] = jnp.abs(var[...]) * 0.5
  unused = _zero_gradients(model, x) - {"['act']['negative_slope'].value"}
  assert not unused, f'parameters that get no gradient: {sorted(unused)}'
