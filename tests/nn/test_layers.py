"""Each building block against the PyTorch operator it reproduces."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jax
import jax.numpy as jnp
from flax import nnx

from jdsr.nn import layers, winograd


def _nhwc(t: torch.Tensor) -> np.ndarray:
  return t.permute(0, 2, 3, 1).numpy()


@pytest.fixture
def feature():
  rng = np.random.default_rng(0)
  return rng.standard_normal((2, 5, 12, 16)).astype(np.float32)  # NCHW, odd channel count


def test_downsample2_is_torch_bilinear_half(feature):
  want = F.interpolate(torch.from_numpy(feature), scale_factor=0.5, mode='bilinear',
                       align_corners=False)
  got = layers.downsample2(jnp.asarray(_nhwc(torch.from_numpy(feature))))
  np.testing.assert_allclose(got, _nhwc(want), atol=1e-6)


def test_upsample2_is_torch_bilinear_double(feature):
  want = F.interpolate(torch.from_numpy(feature), scale_factor=2, mode='bilinear',
                       align_corners=False)
  got = layers.upsample2(jnp.asarray(_nhwc(torch.from_numpy(feature))))
  np.testing.assert_allclose(got, _nhwc(want), atol=1e-6)


def test_pixel_shuffle_is_torch_order():
  x = torch.arange(2 * 48 * 3 * 5, dtype=torch.float32).reshape(2, 48, 3, 5)
  want = F.pixel_shuffle(x, 4)
  got = layers.pixel_shuffle(jnp.asarray(_nhwc(x)), 4)
  np.testing.assert_array_equal(got, _nhwc(want))


def test_global_pool_is_adaptive_avg_pool(feature):
  want = F.adaptive_avg_pool2d(torch.from_numpy(feature), 1)
  got = layers.global_pool(jnp.asarray(_nhwc(torch.from_numpy(feature))))
  np.testing.assert_allclose(got, _nhwc(want), atol=1e-6)


@pytest.mark.parametrize('window', [(3, 5), (12, 7), (4, 16), (1, 1)])
def test_box_mean_is_replicate_padded_valid_mean(feature, window):
  x = _nhwc(torch.from_numpy(feature)).astype(np.float64)
  n, h, w, c = x.shape
  k1, k2 = min(h, window[0]), min(w, window[1])
  valid = np.stack([np.stack([x[:, i:i + k1, j:j + k2].mean(axis=(1, 2))
                              for j in range(w - k2 + 1)], 1) for i in range(h - k1 + 1)], 1)
  oh, ow = valid.shape[1:3]
  want = np.pad(valid, ((0, 0), ((h - oh) // 2, (h - oh + 1) // 2),
                        ((w - ow) // 2, (w - ow + 1) // 2), (0, 0)), mode='edge')
  got = layers.box_mean(jnp.asarray(x, jnp.float32), window)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_box_mean_covering_window_is_global_pool(feature):
  x = jnp.asarray(_nhwc(torch.from_numpy(feature)))
  np.testing.assert_array_equal(layers.box_mean(x, (12, 16)), layers.global_pool(x))
  np.testing.assert_array_equal(layers.box_mean(x, (50, 50)), layers.global_pool(x))


def test_tlsc_windows_follow_the_reference_rule(monkeypatch):
  # A layer whose feature is half the input: window = (64/2) * 96 // 64 = 48,
  # whatever the test-time input size.
  seen = []
  monkeypatch.setattr(layers, 'box_mean', lambda x, window: seen.append(window))
  pool = layers.TLSC().pool((112, 144))
  for shape in [(1, 56, 72, 1), (1, 112, 144, 1), (1, 14, 18, 1)]:
    pool(jnp.zeros(shape))
  assert seen == [(48, 48), (96, 96), (12, 12)]


def test_tlsc_at_training_size_is_global_pool():
  x = jax.random.normal(jax.random.key(0), (1, 32, 32, 4))
  pool = layers.TLSC().pool((64, 64))  # a feature at half the 64x64 training input
  np.testing.assert_array_equal(pool(x), layers.global_pool(x))


def test_conv_is_torch_conv2d_same_padding():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 16, 9, 11)).astype(np.float32)
  w = (rng.standard_normal((24, 16, 3, 3)) / np.sqrt(144)).astype(np.float32)
  want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)
  for impl in layers.CONV_IMPLS:
    conv = layers.conv(16, 24, 3, impl=impl, rngs=nnx.Rngs(0))
    uses_winograd = conv.conv_general_dilated is winograd.conv_general_dilated
    assert uses_winograd == (impl == 'winograd' or (impl == 'auto' and
                                                    jax.default_backend() == 'cpu'))
    conv.kernel[...] = jnp.asarray(w.transpose(2, 3, 1, 0))
    np.testing.assert_allclose(conv(jnp.asarray(_nhwc(torch.from_numpy(x)))), _nhwc(want),
                               atol=2e-5, err_msg=impl)


def test_pointwise_convolution_is_a_matrix_product_with_the_same_gradients():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((2, 5, 7, 16)), jnp.float32)
  conv = layers.conv(16, 8, 1, impl='winograd', rngs=nnx.Rngs(0))
  assert conv.conv_general_dilated is winograd.conv_general_dilated
  k = conv.kernel[...]
  direct = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  dn = jax.lax.conv_dimension_numbers(x.shape, k.shape, ('NHWC', 'HWIO', 'NHWC'))
  ours = lambda x, k: winograd.conv_general_dilated(x, k, (1, 1), 'SAME',  # noqa: E731
                                                    dimension_numbers=dn)
  np.testing.assert_allclose(conv(x), direct(x, k), atol=1e-5)
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))  # noqa: E731
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, k), jax.grad(loss(direct), (0, 1))(x, k)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('cin, cout', [(3, 16), (16, 3)])
def test_thin_convolutions_stay_direct_with_the_same_gradients(cin, cout):
  """Image convolutions (3 channels in or out) are XLA's, with a hand-written kernel gradient."""
  conv = layers.conv(cin, cout, 3, impl='winograd', rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 9, 14, cin))
  jaxpr = jax.make_jaxpr(lambda x: conv(x))(x)
  assert 'conv_general_dilated' in str(jaxpr) and 'dot_general' not in str(jaxpr)
  kernel = conv.kernel[...]
  direct = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))  # noqa: E731
  got = jax.grad(loss(winograd.thin_conv3x3), argnums=(0, 1))(x, kernel)
  want = jax.grad(loss(direct), argnums=(0, 1))(x, kernel)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('shape', [(1, 8, 8, 3, 5), (2, 13, 7, 6, 4), (1, 1, 1, 2, 2),
                                   (1, 24, 40, 16, 16)])
def test_winograd_equals_direct_convolution(shape):
  n, h, w, c, o = shape
  kx, kw = jax.random.split(jax.random.key(sum(shape)))
  x = jax.random.normal(kx, (n, h, w, c))
  k = jax.random.normal(kw, (3, 3, c, o)) / np.sqrt(9 * c)
  direct = jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  np.testing.assert_allclose(winograd.conv3x3(x, k), direct, atol=2e-5)


@pytest.mark.parametrize('shape', [(1, 12, 10, 4, 5), (2, 9, 14, 16, 8)])
def test_winograd_gradients_equal_direct_convolution(shape):
  n, h, w, c, o = shape
  kx, kw = jax.random.split(jax.random.key(3))
  x = jax.random.normal(kx, (n, h, w, c))
  k = jax.random.normal(kw, (3, 3, c, o)) / np.sqrt(9 * c)
  direct = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))  # noqa: E731
  gw = jax.grad(loss(winograd.conv3x3), argnums=(0, 1))(x, k)
  gd = jax.grad(loss(direct), argnums=(0, 1))(x, k)
  for a, b in zip(gw, gd):  # float32 rounding of sums over n·h·w products: relative to the largest
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(b).max()))


def test_winograd_falls_back_for_other_convolutions():
  x = jnp.ones((1, 8, 8, 2))
  k = jnp.ones((3, 3, 2, 2))
  dn = jax.lax.conv_dimension_numbers(x.shape, k.shape, ('NHWC', 'HWIO', 'NHWC'))
  strided = winograd.conv_general_dilated(x, k, (2, 2), 'SAME', dimension_numbers=dn)
  assert strided.shape == (1, 4, 4, 2)


def test_pool_conv_commutes_for_tlsc():
  x = jax.random.normal(jax.random.key(4), (1, 40, 56, 16))
  conv = layers.conv(16, 4, 1, rngs=nnx.Rngs(0))
  local = layers.TLSC(base_size=(24, 24)).pool((40, 56))
  assert isinstance(local, layers.LocalMean)
  np.testing.assert_allclose(layers.pool_conv(local, conv, x), conv(local(x)), atol=1e-5)
  assert layers.pool_conv(layers.global_pool, conv, x).shape == (1, 1, 1, 4)
