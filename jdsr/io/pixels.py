"""Pixel values and resizing: the one home of the conversions every tool shares.

* ``to_float``: integer samples to float32 in [0, 1] (uint8 / 255, uint16 / 65535).
* ``quantize``: float in [0, 1] to 8- or 16-bit integers: clamp, scale, round to
  nearest with ties to even, in float32, as PyTorch does on float32 tensors (the
  evaluation protocol's quantisation, see ``jdsr.evaluation.metrics``, and what image files get).
* ``resize_bicubic``: Pillow's BICUBIC (antialiased when downscaling) on float32
  channels, mode 'F', so there is no 8-bit rounding; not clipped.
* ``upscale``: ``resize_bicubic`` by an integer factor, clipped to [0, 1]: the
  "bicubic" baseline of the metric tables and figures, and the upscaled alpha channel.

NumPy and Pillow only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_TOP = {np.uint8: 255, np.uint16: 65535}  # the largest sample of each integer type


def to_float(image: np.ndarray) -> np.ndarray:
  """float32 in [0, 1]: uint8 / 255, uint16 / 65535 (in float32); float is cast to float32."""
  image = np.asarray(image)
  top = _TOP.get(image.dtype.type)
  if top is not None:
    return image.astype(np.float32) / np.float32(top)
  if np.issubdtype(image.dtype, np.floating):
    return image.astype(np.float32)
  raise TypeError(f'images must be uint8, uint16 or float in [0, 1], got {image.dtype}')


def quantize(image: np.ndarray, bits: int = 8) -> np.ndarray:
  """Clamp to [0, 1], ×(2**bits - 1), round to nearest (ties to even), in float32.

  Returns uint8 for ``bits=8``, uint16 for 16. An integer array of that type is
  returned unchanged (it is quantised already); other non-float input is a TypeError.
  """
  if bits not in (8, 16):
    raise ValueError(f'bits must be 8 or 16, got {bits}')
  target = np.uint8 if bits == 8 else np.uint16
  image = np.asarray(image)
  if image.dtype.type is target:
    return image
  if not np.issubdtype(image.dtype, np.floating):
    raise TypeError(f'images must be float in [0, 1] or {np.dtype(target).name}, got {image.dtype}')
  top = np.float32(_TOP[target])
  scaled = np.clip(image.astype(np.float32), np.float32(0), np.float32(1)) * top
  return np.rint(scaled).astype(target)


def resize_bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """An H×W or H×W×C float image resized to ``size`` = (height, width), float32, not clipped.

  Each channel goes through Pillow's ``resize(..., BICUBIC)`` as a float32 mode 'F'
  image: bicubic (a = -0.5) interpolation, antialiased when downscaling (like MATLAB's
  ``imresize``), without 8-bit rounding. Bicubic overshoots at edges: clip if needed.
  """
  return _resize(image, size, Image.Resampling.BICUBIC, 'resize_bicubic')


def resize_lanczos(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """As ``resize_bicubic``, with Pillow's Lanczos filter: how ``--outscale`` resizes the ×4
  output, as Real-ESRGAN does. Lanczos overshoots at edges too: clip if needed."""
  return _resize(image, size, Image.Resampling.LANCZOS, 'resize_lanczos')


def _resize(image: np.ndarray, size: tuple[int, int], method, name: str) -> np.ndarray:
  image = np.asarray(image)
  if not np.issubdtype(image.dtype, np.floating):
    raise TypeError(f'{name} needs a float image, got {image.dtype} (see to_float)')
  if image.ndim not in (2, 3) or 0 in image.shape:
    raise ValueError(f'expected a non-empty H×W or H×W×C image, got shape {image.shape}')
  height, width = (int(n) for n in size)
  if height < 1 or width < 1:
    raise ValueError(f'size must be a positive (height, width), got {size}')
  if image.ndim == 2:
    return _resize_channel(image, width, height, method)
  return np.stack([_resize_channel(image[..., c], width, height, method)
                   for c in range(image.shape[2])], axis=-1)


def upscale(image: np.ndarray, scale: int = 4) -> np.ndarray:
  """H×W(×C) float → (scale·H)×(scale·W)(×C) float32 by ``resize_bicubic``, clipped to [0, 1]."""
  image = np.asarray(image)
  if scale < 1:
    raise ValueError(f'scale must be at least 1, got {scale}')
  if image.ndim not in (2, 3):
    raise ValueError(f'expected an H×W or H×W×C image, got shape {image.shape}')
  h, w = image.shape[:2]
  return np.clip(resize_bicubic(image, (scale * h, scale * w)), 0, 1)


def _resize_channel(channel: np.ndarray, width: int, height: int, method) -> np.ndarray:
  resized = Image.fromarray(np.ascontiguousarray(channel, np.float32)).resize((width, height),
                                                                              method)
  return np.array(resized, np.float32)  # a writable copy
