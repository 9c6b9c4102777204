"""Image-quality metrics of the paper's evaluation protocol, in NumPy.

The paper's numbers are ``psnr`` and ``ssim`` with their defaults: the protocol
of CNLRN's code (see docs/network.md, "Evaluation"), reproduced exactly:

* Both the output and the ground truth are quantised by ``jdsr.io.pixels.quantize``:
  clamp to [0, 1], ×255, round to nearest (ties to even), in float32 arithmetic,
  as PyTorch does on float32 tensors. Float64 arithmetic or rounding ties up
  gives other integers on a few pixels.
* RGB, no border crop.
* PSNR: ``20·log10(255 / sqrt(mse))`` over all pixels and channels, in
  float64; ``inf`` for identical images.
* SSIM: 11×11 Gaussian window (σ = 1.5, the outer product of
  ``cv2.getGaussianKernel(11, 1.5)``), 'same' filtering then dropping 5 pixels
  on each side (that is, a 'valid' correlation), C1 = (0.01·255)²,
  C2 = (0.03·255)², per channel, averaged over channels and pixels.

``crop`` drops that many pixels from each border first (other papers' RGB
variants). ``psnr_y`` and ``ssim_y`` are the Y-channel variants other papers
report: Y of ITU-R BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` (range [16, 235]),
not rounded, as BasicSR's ``calculate_psnr(..., test_y_channel=True)``.

Images are HWC (one image: the metric is a float) or NHWC (a batch: an array
of one value per image); float in [0, 1], quantised as above, or uint8.
"""

from __future__ import annotations

import numpy as np

from jdsr.io import pixels

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_GAUSSIAN = np.exp(-(np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2) ** 2 / (2 * SSIM_SIGMA ** 2))
_GAUSSIAN /= _GAUSSIAN.sum()
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])  # per unit of R, G, B in [0, 1]


def psnr(pred: np.ndarray, target: np.ndarray, crop: int = 0) -> float | np.ndarray:
  """PSNR on RGB; with ``crop=0`` (the default), the paper's PSNR."""
  p, t, batched = _prepare(pred, target, crop, min_size=1)
  return _result(_psnr(p, t), batched)


def ssim(pred: np.ndarray, target: np.ndarray, crop: int = 0) -> float | np.ndarray:
  """SSIM on RGB; with ``crop=0`` (the default), the paper's SSIM."""
  p, t, batched = _prepare(pred, target, crop, min_size=SSIM_WINDOW)
  return _result(_ssim(p, t), batched)


def psnr_y(pred: np.ndarray, target: np.ndarray, crop: int = 0) -> float | np.ndarray:
  """PSNR on the BT.601 Y channel (range [16, 235]), ``crop`` pixels dropped per border."""
  p, t, batched = _prepare(pred, target, crop, min_size=1)
  return _result(_psnr(_y(p), _y(t)), batched)


def ssim_y(pred: np.ndarray, target: np.ndarray, crop: int = 0) -> float | np.ndarray:
  """SSIM on the BT.601 Y channel (range [16, 235]), ``crop`` pixels dropped per border."""
  p, t, batched = _prepare(pred, target, crop, min_size=SSIM_WINDOW)
  return _result(_ssim(_y(p), _y(t)), batched)


def _prepare(pred: np.ndarray, target: np.ndarray, crop: int,
             min_size: int) -> tuple[np.ndarray, np.ndarray, bool]:
  """Quantised, cropped float64 NHWC copies of both images, and whether they were a batch."""
  pred, target = np.asarray(pred), np.asarray(target)
  if pred.shape != target.shape:
    raise ValueError(f'pred and target shapes differ: {pred.shape} vs {target.shape}')
  if pred.ndim not in (3, 4):
    raise ValueError(f'expected an HWC image or an NHWC batch, got shape {pred.shape}')
  if crop < 0:
    raise ValueError(f'crop must be >= 0, got {crop}')
  batched = pred.ndim == 4
  pred, target = (pixels.quantize(x if batched else x[None]).astype(np.float64)
                  for x in (pred, target))
  height, width = pred.shape[1] - 2 * crop, pred.shape[2] - 2 * crop
  if min(height, width) < min_size:
    raise ValueError(f'images of shape {pred.shape[1:]} are {max(height, 0)}×{max(width, 0)} after '
                     f'cropping {crop} pixels per border; this metric needs at least '
                     f'{min_size}×{min_size}')
  window = (slice(None), slice(crop, crop + height), slice(crop, crop + width))
  return pred[window], target[window], batched


def _result(values: np.ndarray, batched: bool) -> float | np.ndarray:
  return values if batched else float(values[0])


def _y(img: np.ndarray) -> np.ndarray:
  """NHW1 Y channel, in [16, 235], of an NHWC RGB image in [0, 255]."""
  if img.shape[-1] != 3:
    raise ValueError(f'the Y channel needs RGB images, got {img.shape[-1]} channels')
  return (16 + img @ (_Y_WEIGHTS / 255))[..., None]


def _psnr(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
  mse = np.mean((pred - target) ** 2, axis=(1, 2, 3))
  with np.errstate(divide='ignore'):
    return 20 * np.log10(255 / np.sqrt(mse))


def _filter(x: np.ndarray) -> np.ndarray:
  """'Valid' correlation of every NHWC channel with the separable 11×11 Gaussian."""
  height, width = x.shape[1] - SSIM_WINDOW + 1, x.shape[2] - SSIM_WINDOW + 1
  x = sum(g * x[:, i:i + height] for i, g in enumerate(_GAUSSIAN))
  return sum(g * x[:, :, i:i + width] for i, g in enumerate(_GAUSSIAN))


def _ssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
  mu_p, mu_t = _filter(pred), _filter(target)
  var_p = _filter(pred * pred) - mu_p ** 2
  var_t = _filter(target * target) - mu_t ** 2
  cov = _filter(pred * target) - mu_p * mu_t
  ssim_map = ((2 * mu_p * mu_t + _C1) * (2 * cov + _C2)
              / ((mu_p ** 2 + mu_t ** 2 + _C1) * (var_p + var_t + _C2)))
  return ssim_map.mean(axis=(1, 2, 3))
