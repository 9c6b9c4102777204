"""Synthetic REDS-like degradation of sharp photos: (blurry LR, sharp LR, sharp HR).

For training on any folder of sharp photos. From a sharp HR image,
``Degradation(...)(hr, seed)`` makes

* ``sharp_hr``: the input cropped to a multiple of ``scale``;
* ``sharp_lr = bicubic_down(sharp_hr)``: ``jdsr.io.pixels.resize_bicubic`` ×1/scale
  (Pillow's antialiased BICUBIC in float mode 'F', like MATLAB ``imresize``);
* ``blur_lr = bicubic_down(blur(sharp_hr, k)) + noise``: camera-shake motion
  blur at HR, then the same downsampling, then optional Gaussian noise;

all float32, clipped to [0, 1]. Everything is drawn from
``np.random.default_rng(seed)``: the same seed gives identical outputs.

Blur model (``motion_kernel``), in the spirit of Boracchi & Foi 2012, "Modeling
the performance of image restoration from motion blur": the camera moves along
a trajectory of ``steps`` segments of equal exposure time. Its velocity starts
as a unit vector in a random direction θ ~ U[0, 2π) and changes smoothly: at
every step it gets a random acceleration a ~ N(0, σ² I) (momentum: velocity is
the running sum of accelerations, position the running sum of velocities). The
shake σ ~ U[0, ``shake``]; with probability ``p_linear`` σ = 0, which gives
linear motion, a straight line at angle θ. The trajectory is scaled to a total
path length L ~ U[``length``] pixels; since time steps are equal and speeds are
not, the camera dwells (and the kernel is brighter) where it moves slowly. The
path is sampled densely, centred on its centre of mass, splatted onto the
``size``×``size`` grid bilinearly (which keeps the centre of mass exactly at
the grid centre, so blurring does not shift the image) and normalised to sum
to 1. A path too large for the grid is shrunk about its centre of mass to fit.

NumPy and Pillow only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jdsr.io import pixels

SUBSAMPLES = 8  # path samples per trajectory segment


def motion_kernel(rng: np.random.Generator, size: int = 31, length: tuple[float, float] = (5, 25), *,
                  steps: int = 32, shake: float = 0.25, p_linear: float = 0.2) -> np.ndarray:
  """A random camera-shake blur kernel: float32 size×size, non-negative, sums to 1.

  See the module docstring for the model: path length ~ U[length] pixels,
  direction ~ U[0, 2π), acceleration std ~ U[0, shake] (0 with probability
  p_linear: a straight line), centre of mass at ((size-1)/2, (size-1)/2).
  """
  if size < 3:
    raise ValueError(f'kernel size must be at least 3, got {size}')
  total = rng.uniform(*length)
  theta = rng.uniform(0, 2 * np.pi)
  sigma = 0.0 if rng.uniform() < p_linear else rng.uniform(0, shake)
  accel = rng.normal(0, 1, (steps, 2)) * sigma
  velocity = np.array([np.cos(theta), np.sin(theta)]) + np.cumsum(accel, axis=0)  # (x, y) per step
  corners = np.concatenate([np.zeros((1, 2)), np.cumsum(velocity, axis=0)])
  travelled = np.sum(np.linalg.norm(velocity, axis=1))
  corners *= total / max(travelled, 1e-12)
  # Dense samples along the polyline, equally spaced in time.
  t = np.linspace(0, steps, steps * SUBSAMPLES + 1)
  points = np.stack([np.interp(t, np.arange(steps + 1), corners[:, i]) for i in range(2)], axis=1)
  points -= points.mean(axis=0)
  limit = (size - 1) / 2 - 1  # so that floor(p) + 1 stays on the grid
  reach = np.abs(points).max()
  if reach > limit:
    points *= limit / reach
  points += (size - 1) / 2
  return _splat(points, size)


def _splat(points: np.ndarray, size: int) -> np.ndarray:
  """Equal-weight (x, y) points splatted bilinearly onto a size×size grid, normalised."""
  kernel = np.zeros((size, size), np.float64)
  x0 = np.floor(points[:, 0]).astype(int)
  y0 = np.floor(points[:, 1]).astype(int)
  fx = points[:, 0] - x0
  fy = points[:, 1] - y0
  for dy, wy in ((0, 1 - fy), (1, fy)):
    for dx, wx in ((0, 1 - fx), (1, fx)):
      np.add.at(kernel, (y0 + dy, x0 + dx), wy * wx)
  return (kernel / kernel.sum()).astype(np.float32)


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
  """H×W×C float32 convolved per channel with `kernel` (centre at index k//2), reflect padding.

  A true convolution (the kernel is flipped), computed with the FFT; the
  output has the input's size.
  """
  kh, kw = kernel.shape
  top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
  padded = np.pad(image.astype(np.float64), ((top, kh // 2), (left, kw // 2), (0, 0)), mode='reflect')
  shape = (padded.shape[0] + kh - 1, padded.shape[1] + kw - 1)
  spectrum = np.fft.rfft2(padded, shape, axes=(0, 1)) * np.fft.rfft2(kernel, shape)[..., None]
  full = np.fft.irfft2(spectrum, shape, axes=(0, 1))
  h, w = image.shape[:2]
  return full[kh - 1:kh - 1 + h, kw - 1:kw - 1 + w].astype(np.float32)


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
  """The top-left part of `image` whose height and width are multiples of `scale`."""
  h, w = image.shape[:2]
  return image[:h - h % scale, :w - w % scale]


def bicubic_down(image: np.ndarray, scale: int = 4) -> np.ndarray:
  """float H×W×C cropped to a multiple of ``scale``, then ×1/scale by ``pixels.resize_bicubic``.

  float32 (H//scale)×(W//scale)×C, not clipped.
  """
  image = crop_to_multiple(image, scale)
  h, w = image.shape[:2]
  return pixels.resize_bicubic(image, (h // scale, w // scale))


@dataclasses.dataclass(frozen=True)
class Degradation:
  """Sharp HR photo → (blur_lr, sharp_lr, sharp_hr), deterministic given a seed.

  `noise` is the largest std of the Gaussian noise added to the blurry LR;
  each call draws its std uniformly from [0, noise].
  """
  scale: int = 4
  kernel_size: int = 31
  length: tuple[float, float] = (5.0, 25.0)
  noise: float = 0.0

  def __call__(self, hr: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`hr`: H×W×C, float in [0, 1], uint8 or uint16. Returns float32 arrays in [0, 1]."""
    hr = pixels.to_float(hr)
    rng = np.random.default_rng(seed)
    kernel = motion_kernel(rng, self.kernel_size, self.length)  # drawn first: noise never changes it
    sharp_hr = np.clip(crop_to_multiple(hr, self.scale), 0, 1)
    sharp_lr = bicubic_down(sharp_hr, self.scale)
    blur_lr = bicubic_down(blur(sharp_hr, kernel), self.scale)
    if self.noise > 0:
      blur_lr = blur_lr + rng.normal(0, rng.uniform(0, self.noise), blur_lr.shape).astype(np.float32)
    return (np.clip(blur_lr, 0, 1).astype(np.float32), np.clip(sharp_lr, 0, 1).astype(np.float32),
            sharp_hr)
