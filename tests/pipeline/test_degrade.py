"""Synthetic motion blur + bicubic ×4 degradation (jdsr.data.degrade)."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from jdsr.io import pixels
from jdsr.data import degrade
from tests.helpers import ROOT

PHOTO = ROOT / 'samples' / 'sharp' / 'coffee.png'


def _kernel(seed: int, **kwargs) -> np.ndarray:
  return degrade.motion_kernel(np.random.default_rng(seed), **kwargs)


def _moments(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Centre of mass (x, y) and the 2×2 covariance of a kernel."""
  ys, xs = np.mgrid[:kernel.shape[0], :kernel.shape[1]]
  coords = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
  weights = kernel.ravel().astype(np.float64)
  mean = weights @ coords
  centred = coords - mean
  return mean, (centred * weights[:, None]).T @ centred


def _mean_gradient(image: np.ndarray) -> float:
  return float(np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean())


@pytest.fixture(scope='module')
def photo() -> np.ndarray:
  return np.asarray(Image.open(PHOTO).convert('RGB'), np.float32) / 255


@pytest.mark.parametrize('size', [15, 31, 32])
def test_kernel_is_normalised_nonnegative_and_centred(size):
  for seed in range(20):
    kernel = _kernel(seed, size=size, length=(5, 25))
    assert kernel.shape == (size, size) and kernel.dtype == np.float32
    assert kernel.min() >= 0
    assert kernel.sum() == pytest.approx(1, abs=1e-5)
    mean, _ = _moments(kernel)
    np.testing.assert_allclose(mean, [(size - 1) / 2] * 2, atol=0.5)


def test_kernel_is_deterministic_and_differs_across_seeds():
  np.testing.assert_array_equal(_kernel(3), _kernel(3))
  kernels = [_kernel(seed) for seed in range(8)]
  for i in range(8):
    for j in range(i):
      assert np.abs(kernels[i] - kernels[j]).sum() > 0.1


def test_kernel_extent_grows_with_length():
  spread = lambda length: np.mean([np.trace(_moments(_kernel(s, length=length))[1]) for s in range(10)])
  short, long = spread((2, 3)), spread((20, 25))
  assert long > 10 * short


def test_linear_kernel_is_a_centred_line_of_the_drawn_length():
  for seed in range(5):
    kernel = _kernel(seed, length=(20, 20), p_linear=1.0)
    _, cov = _moments(kernel)
    small, large = np.linalg.eigvalsh(cov)
    # A segment of length L sampled at n equally spaced points has variance (L²/12)(n+1)/(n-1)
    # along it (n = 257 here); bilinear splatting adds at most 1/4.
    assert 20 ** 2 / 12 <= large <= 20 ** 2 / 12 * 258 / 256 + 0.25
    assert small < 0.25


def test_curved_kernels_occur():
  widths = [np.linalg.eigvalsh(_moments(_kernel(s, length=(20, 25)))[1])[0] for s in range(20)]
  assert max(widths) > 1.0  # some trajectories bend well away from a line


def test_blur_with_delta_is_identity_and_offset_delta_shifts():
  image = np.random.default_rng(0).uniform(size=(20, 23, 3)).astype(np.float32)
  for size in (5, 6):
    delta = np.zeros((size, size), np.float32)
    delta[size // 2, size // 2] = 1
    out = degrade.blur(image, delta)
    assert out.shape == image.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, image, atol=1e-5)
  shifted = np.zeros((5, 5), np.float32)
  shifted[2, 3] = 1  # convolution: out[i, j] = image[i, j - 1]
  np.testing.assert_allclose(degrade.blur(image, shifted)[:, 1:], image[:, :-1], atol=1e-5)


def test_blur_preserves_a_constant_and_averages():
  constant = np.full((17, 21, 3), 0.3, np.float32)
  np.testing.assert_allclose(degrade.blur(constant, _kernel(1)), constant, atol=1e-5)
  box = np.full((3, 3), 1 / 9, np.float32)
  image = np.random.default_rng(1).uniform(size=(10, 12, 1)).astype(np.float32)
  expected = sum(image[4 + dy, 5 + dx, 0] for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
  assert degrade.blur(image, box)[4, 5, 0] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize('shape,expected', [((64, 48, 3), (16, 12, 3)), ((67, 53, 3), (16, 13, 3)),
                                            ((9, 7, 1), (2, 1, 1))])
def test_bicubic_down_shapes_and_constant(shape, expected):
  out = degrade.bicubic_down(np.full(shape, 0.7, np.float32))
  assert out.shape == expected and out.dtype == np.float32
  np.testing.assert_allclose(out, 0.7, atol=1e-5)


def test_bicubic_down_is_the_crop_resized_by_pixels():
  image = np.random.default_rng(4).uniform(size=(67, 53, 3)).astype(np.float32)
  np.testing.assert_array_equal(degrade.bicubic_down(image),
                                pixels.resize_bicubic(image[:64, :52], (16, 13)))


def test_bicubic_down_antialiases():
  checker = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)[..., None]
  out = degrade.bicubic_down(checker)
  np.testing.assert_allclose(out[2:-2, 2:-2], 0.5, atol=0.02)  # point sampling would give 0 or 1


def test_degradation_shapes_range_and_determinism():
  hr = np.random.default_rng(2).uniform(size=(70, 85, 3)).astype(np.float32)
  make = degrade.Degradation(noise=0.05)
  blur_lr, sharp_lr, sharp_hr = make(hr, seed=7)
  assert blur_lr.shape == sharp_lr.shape == (17, 21, 3)
  assert sharp_hr.shape == (68, 84, 3)
  np.testing.assert_array_equal(sharp_hr, hr[:68, :84])
  for out in (blur_lr, sharp_lr, sharp_hr):
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
  np.testing.assert_allclose(sharp_lr, np.clip(degrade.bicubic_down(sharp_hr), 0, 1))
  again = make(hr, seed=7)
  for a, b in zip((blur_lr, sharp_lr, sharp_hr), again):
    np.testing.assert_array_equal(a, b)
  other = make(hr, seed=8)
  assert np.abs(other[0] - blur_lr).mean() > 1e-3
  np.testing.assert_array_equal(other[1], sharp_lr)


def test_integer_photos_are_converted_by_pixels_to_float():
  u8 = np.random.default_rng(6).integers(0, 256, (32, 40, 3), dtype=np.uint8)
  u16 = u8.astype(np.uint16) * 257
  expected = degrade.Degradation()(u8.astype(np.float32) / 255, seed=1)
  for image in (u8, u16):
    for a, b in zip(degrade.Degradation()(image, seed=1), expected):
      np.testing.assert_array_equal(a, b)
  with pytest.raises(TypeError, match='uint8, uint16 or float'):
    degrade.Degradation()(u8.astype(np.int32), seed=1)


def test_noise_changes_only_the_blurry_lr():
  hr = np.random.default_rng(3).uniform(size=(64, 64, 3)).astype(np.float32)
  clean = degrade.Degradation(noise=0.0)(hr, seed=5)
  noisy = degrade.Degradation(noise=0.1)(hr, seed=5)
  assert np.abs(noisy[0] - clean[0]).mean() > 1e-3
  np.testing.assert_array_equal(noisy[1], clean[1])
  np.testing.assert_array_equal(noisy[2], clean[2])
  # Same seed, same kernel: without noise, blur_lr is exactly the blurred image downsampled.
  kernel = degrade.motion_kernel(np.random.default_rng(5))
  expected = np.clip(degrade.bicubic_down(degrade.blur(hr, kernel)), 0, 1)
  np.testing.assert_allclose(clean[0], expected, atol=1e-6)


def test_blurry_lr_is_blurrier_than_sharp_lr_on_a_photo(photo):
  make = degrade.Degradation(length=(15.0, 25.0))
  for seed in range(3):
    blur_lr, sharp_lr, sharp_hr = make(photo, seed)
    h, w = photo.shape[0] // 4, photo.shape[1] // 4
    assert sharp_hr.shape == (4 * h, 4 * w, 3) and blur_lr.shape == sharp_lr.shape == (h, w, 3)
    assert _mean_gradient(blur_lr) < 0.8 * _mean_gradient(sharp_lr)
    # The blur keeps the image where it was: its mean colour and low frequencies.
    np.testing.assert_allclose(blur_lr.mean(axis=(0, 1)), sharp_lr.mean(axis=(0, 1)), atol=0.01)
