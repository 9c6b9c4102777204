"""The training losses against the reference's numbers and their definitions."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jdsr.train import losses
from tests import reference


@pytest.fixture(scope='module')
def golden():
  g = reference.load('golden_losses.npz')
  arrays = {k: jnp.asarray(reference.nchw_to_nhwc(v)) for k, v in g.items() if v.ndim == 4}
  values = {k: float(v) for k, v in g.items() if v.ndim == 0}
  return arrays, values


def _inputs(arrays):
  stages = [arrays['stage3_img'], arrays['stage2_img'], arrays['stage1_img']]
  return stages, arrays['sr'], arrays['target_lr'], arrays['target_hr']


def _compute(name, arrays):
  stages, sr, lr, hr = _inputs(arrays)
  return {
      'charbonnier_stage3': lambda: losses.charbonnier(stages[0], lr),
      'edge_stage3': lambda: losses.edge(stages[0], lr),
      'l1_sr': lambda: losses.l1(sr, hr),
      'gradient_sr': lambda: losses.gradient(sr, hr),
      'phase1_loss': lambda: losses.deblur_loss(stages, lr),
      'phase2_loss': lambda: losses.sr_loss(sr, hr),
      'phase3_loss': lambda: losses.joint_loss(stages, sr, lr, hr),
  }[name]()


GOLDEN_KEYS = ('charbonnier_stage3', 'edge_stage3', 'l1_sr', 'gradient_sr',
               'phase1_loss', 'phase2_loss', 'phase3_loss')


@pytest.mark.parametrize('name', GOLDEN_KEYS)
def test_matches_reference(golden, name):
  arrays, values = golden
  got = _compute(name, arrays)
  assert got.shape == () and got.dtype == jnp.float32
  np.testing.assert_allclose(float(got), values[name], rtol=1e-5)


# Independent float64 NumPy versions of the two filters, from docs/network.md, "Losses".

def _np_correlate(x, kernel, mode):
  p = kernel.shape[0] // 2
  _, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode)
  return sum(kernel[i, j] * xp[:, i:i + h, j:j + w]
             for i in range(kernel.shape[0]) for j in range(kernel.shape[1]))


def _np_laplacian(x):
  k = np.array([0.05, 0.25, 0.4, 0.25, 0.05])
  g = np.outer(k, k)
  filtered = _np_correlate(x, g, 'edge')
  up = np.zeros_like(filtered)
  up[:, ::2, ::2] = 4 * filtered[:, ::2, ::2]
  return x - _np_correlate(up, g, 'edge')


@pytest.fixture
def odd_image():
  # Odd sizes: keeping rows/columns 0, 2, ... differs from 1, 3, ... at both borders.
  return np.random.default_rng(0).uniform(size=(2, 13, 11, 3))


def test_laplacian_matches_numpy(odd_image):
  got = losses.laplacian(jnp.asarray(odd_image, jnp.float32))
  np.testing.assert_allclose(got, _np_laplacian(odd_image), atol=1e-6)


def test_sobel_matches_numpy(odd_image):
  sx = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float64)
  gx, gy = losses.sobel(jnp.asarray(odd_image, jnp.float32))
  np.testing.assert_allclose(gx, _np_correlate(odd_image, sx, 'constant'), atol=1e-5)
  np.testing.assert_allclose(gy, _np_correlate(odd_image, sx.T, 'constant'), atol=1e-5)


def test_gradient_of_horizontal_ramp():
  # x[h, w] = w: Sx = (1 + 2 + 1) * (x[w-1] - x[w+1]) = -8 inside, Sy = 0. Small
  # integers keep every sum exact in float32.
  ramp = jnp.broadcast_to(jnp.arange(10, dtype=jnp.float32)[None, None, :, None], (1, 8, 10, 2))
  gx, gy = losses.sobel(ramp)
  np.testing.assert_array_equal(gx[:, 1:-1, 1:-1], -8.0)
  np.testing.assert_array_equal(gy[:, 1:-1, 1:-1], 0.0)
  # gradient() against a constant: only the zero-padded borders give Sy anything.
  zero = jnp.zeros_like(ramp)
  sx_part = float(jnp.mean(jnp.abs(gx)))
  assert sx_part > 5.0
  assert float(losses.gradient(ramp, zero)) == pytest.approx(sx_part + float(jnp.mean(jnp.abs(gy))), rel=1e-6)
  # The same ramp turned vertical swaps the roles of Sx and Sy.
  gx_t, gy_t = losses.sobel(jnp.swapaxes(ramp, 1, 2))
  np.testing.assert_array_equal(gx_t[:, 1:-1, 1:-1], 0.0)
  np.testing.assert_array_equal(gy_t[:, 1:-1, 1:-1], -8.0)


def test_zero_difference_is_epsilon(odd_image):
  # rel=1e-5: a float32 mean of 858 equal terms is off by ~1e-5 (summation order).
  x = jnp.asarray(odd_image, jnp.float32)
  zeros = jnp.zeros_like(x)
  assert float(losses.charbonnier(zeros, zeros)) == pytest.approx(1e-3, rel=1e-5)
  assert float(losses.edge(x, x)) == pytest.approx(1e-3, rel=1e-5)
  assert float(losses.charbonnier(zeros, zeros, eps=0.25)) == pytest.approx(0.25, rel=1e-5)
  assert float(losses.edge(x, x[:, ::-1])) > 1e-2


def test_jit_matches_eager(golden):
  arrays, values = golden
  stages, sr, lr, hr = _inputs(arrays)
  for fn, args, name in [(losses.deblur_loss, (stages, lr), 'phase1_loss'),
                         (losses.sr_loss, (sr, hr), 'phase2_loss'),
                         (losses.joint_loss, (stages, sr, lr, hr), 'phase3_loss')]:
    np.testing.assert_allclose(float(jax.jit(fn)(*args)), values[name], rtol=1e-5)


def test_gradients_are_finite_and_nonzero(golden):
  arrays, _ = golden
  stages, sr, lr, hr = _inputs(arrays)
  grads = [jax.jit(jax.grad(losses.deblur_loss))(stages, lr),
           [jax.jit(jax.grad(losses.sr_loss))(sr, hr)]]
  for fn in (losses.charbonnier, losses.edge, losses.l1, losses.gradient):
    grads.append([jax.grad(fn)(stages[1], lr)])
  for group in grads:
    for g in group:
      assert bool(jnp.all(jnp.isfinite(g)))
      assert float(jnp.max(jnp.abs(g))) > 0


def test_joint_loss_ignores_stage3(golden):
  arrays, _ = golden
  stages, sr, lr, hr = _inputs(arrays)
  g_stages, g_sr = jax.jit(jax.grad(losses.joint_loss, argnums=(0, 1)))(stages, sr, lr, hr)
  np.testing.assert_array_equal(g_stages[0], 0.0)
  for g in (g_stages[1], g_stages[2], g_sr):
    assert float(jnp.max(jnp.abs(g))) > 0
  # Its value does not move either, while phase 1 does.
  moved = [stages[0] + 1.0, stages[1], stages[2]]
  assert float(losses.joint_loss(moved, sr, lr, hr)) == float(losses.joint_loss(stages, sr, lr, hr))
  assert float(losses.deblur_loss(moved, lr)) > float(losses.deblur_loss(stages, lr)) + 0.5


def test_the_benchmarks_pytorch_joint_loss_is_ours():
  """tests.torch_network.joint_loss, the PyTorch baseline's phase-3 loss, equals joint_loss."""
  import torch
  from tests.torch_network import joint_loss as torch_joint_loss

  rng = np.random.default_rng(3)
  stages = [rng.random((2, 16, 24, 3), np.float32) for _ in range(3)]
  sharp_lr = rng.random((2, 16, 24, 3), np.float32)
  sr, sharp_hr = rng.random((2, 64, 96, 3), np.float32), rng.random((2, 64, 96, 3), np.float32)
  nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
  theirs = torch_joint_loss([nchw(s) for s in stages], nchw(sr), nchw(sharp_lr), nchw(sharp_hr))
  ours = losses.joint_loss([jnp.asarray(s) for s in stages], sr, sharp_lr, sharp_hr)
  np.testing.assert_allclose(float(theirs), float(ours), rtol=1e-6)
