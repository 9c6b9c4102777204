"""The evaluation metrics against the reference's numbers and hand computations."""

import math

import numpy as np
import pytest

from jdsr.evaluation import metrics
from jdsr.io import pixels
from tests import reference


@pytest.fixture(scope='module')
def golden():
  data = reference.load('golden_metrics.npz')
  return reference.nchw_to_nhwc(data['pred']), reference.nchw_to_nhwc(data['target']), data


def _flat(rgb: tuple[int, int, int], size: int = 16) -> np.ndarray:
  return np.broadcast_to(np.array(rgb, np.uint8), (size, size, 3)).copy()


def _y(rgb: tuple[int, int, int]) -> float:
  r, g, b = (c / 255 for c in rgb)
  return 16 + 65.481 * r + 128.553 * g + 24.966 * b


@pytest.mark.parametrize('name', ['psnr', 'ssim'])
def test_golden(golden, name):
  pred, target, data = golden
  got = getattr(metrics, name)(pred, target)
  assert got.shape == (pred.shape[0],)
  np.testing.assert_allclose(got, data[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize('name', ['psnr', 'ssim', 'psnr_y', 'ssim_y'])
def test_single_image_is_the_batch_entry(golden, name):
  pred, target, _ = golden
  fn = getattr(metrics, name)
  got = fn(pred[1], target[1])
  assert isinstance(got, float)
  assert got == pytest.approx(fn(pred, target)[1], rel=1e-12)


def test_identical_images(golden):
  _, target, _ = golden
  assert metrics.psnr(target, target.copy()).tolist() == [math.inf] * len(target)
  np.testing.assert_allclose(metrics.ssim(target, target.copy()), 1.0, rtol=0, atol=1e-12)


def test_quantisation_clamps_and_rounds_ties_to_even():
  img = np.array([-0.1, 0.0, 2.5 / 255, 3.5 / 255, 1.0, 1.7], np.float32)
  np.testing.assert_array_equal(pixels.quantize(img), [0, 0, 2, 4, 255, 255])
  quantised = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(pixels.quantize(quantised), quantised)
  with pytest.raises(TypeError, match='uint8'):
    pixels.quantize(np.zeros(3, np.int32))
  # The metrics quantise with it: float images score as their quantised selves.
  pred = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
  target = _flat((40, 120, 200))
  assert metrics.psnr(pred, target) == metrics.psnr(pixels.quantize(pred), target)
  with pytest.raises(TypeError, match='uint8'):
    metrics.psnr(np.zeros((16, 16, 3), np.int32), target)


def test_y_of_black_and_white_spans_16_to_235():
  # MATLAB's rgb2ycbcr maps black to Y = 16 and white to Y = 235.
  assert metrics.psnr_y(_flat((0, 0, 0)), _flat((255, 255, 255))) == pytest.approx(
      20 * math.log10(255 / 219), rel=1e-12)


def test_y_variants_of_flat_colours_by_hand():
  a, b = (100, 150, 200), (100, 160, 190)
  ya, yb = _y(a), _y(b)
  assert metrics.psnr_y(_flat(a), _flat(b)) == pytest.approx(
      20 * math.log10(255 / abs(ya - yb)), rel=1e-12)
  # Flat images: no variance, so SSIM is its luminance term alone.
  c1 = (0.01 * 255) ** 2
  assert metrics.ssim_y(_flat(a), _flat(b)) == pytest.approx(
      (2 * ya * yb + c1) / (ya ** 2 + yb ** 2 + c1), rel=1e-9)
  # RGB on the same pair: one channel off by 10 levels, another by -10.
  assert metrics.psnr(_flat(a), _flat(b)) == pytest.approx(
      20 * math.log10(255 / math.sqrt(200 / 3)), rel=1e-12)


@pytest.mark.parametrize('name', ['psnr', 'ssim', 'psnr_y', 'ssim_y'])
def test_crop_removes_borders(name):
  rng = np.random.default_rng(0)
  target = rng.integers(0, 256, (2, 24, 28, 3), dtype=np.uint8)
  pred = rng.integers(0, 256, target.shape, dtype=np.uint8)
  pred[:, 4:-4, 4:-4] = target[:, 4:-4, 4:-4]  # differs only in a 4-pixel border
  fn = getattr(metrics, name)
  perfect = math.inf if name.startswith('psnr') else 1.0
  assert np.all(fn(pred, target, crop=4) == pytest.approx(perfect, rel=1e-12))
  assert np.all(fn(pred, target, crop=3) < perfect)
  assert np.all(fn(pred, target) < perfect)


@pytest.mark.parametrize('name', ['psnr', 'ssim', 'psnr_y', 'ssim_y'])
def test_shape_mismatch(name):
  with pytest.raises(ValueError, match=r'\(16, 16, 3\) vs \(16, 17, 3\)'):
    getattr(metrics, name)(np.zeros((16, 16, 3)), np.zeros((16, 17, 3)))


@pytest.mark.parametrize('name', ['ssim', 'ssim_y'])
def test_ssim_needs_the_window(name):
  fn = getattr(metrics, name)
  assert fn(_flat((1, 2, 3), 11), _flat((1, 2, 3), 11)) == pytest.approx(1.0)
  with pytest.raises(ValueError, match='at least 11×11'):
    fn(_flat((1, 2, 3), 10), _flat((1, 2, 3), 10))
  with pytest.raises(ValueError, match='after cropping 5 pixels'):
    fn(_flat((1, 2, 3), 20), _flat((1, 2, 3), 20), crop=5)


def test_other_errors():
  with pytest.raises(ValueError, match='HWC'):
    metrics.psnr(np.zeros((16, 16)), np.zeros((16, 16)))
  with pytest.raises(ValueError, match='RGB'):
    metrics.psnr_y(np.zeros((16, 16, 4)), np.zeros((16, 16, 4)))
  with pytest.raises(ValueError, match='crop'):
    metrics.psnr(_flat((0, 0, 0)), _flat((0, 0, 0)), crop=8)
  with pytest.raises(ValueError, match='crop must be'):
    metrics.psnr(_flat((0, 0, 0)), _flat((0, 0, 0)), crop=-1)
