"""Which data a training config reads: its training source and its validation set.

``config.data.source`` chooses:

* ``'reds'``: REDS through tensorflow-datasets (``jdsr.data.reds_tfds``),
  prepared from ``config.data.reds_manual_dir`` into ``reds_data_dir``;
  validation from ``config.data.val_split``.
* ``'photos'``: sharp photos from ``config.data.photos_dir`` (one folder, or
  several separated by commas) degraded on the fly (``jdsr.data.degrade``, with
  ``config.data.degradation``); validation photos from ``val_photos_dir``.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jdsr import pixels
from jdsr.data import degrade, pipeline

SOURCES = ('reds', 'photos')


def _degradation(config: ml_collections.ConfigDict) -> degrade.Degradation:
  d = config.data.degradation
  return degrade.Degradation(scale=config.model.scale, kernel_size=d.kernel_size,
                             length=tuple(d.length), noise=d.noise)


def _folders(spec: str) -> list[str]:
  """'a,b' → ['a', 'b'] (config.data.photos_dir may name several folders)."""
  folders = [f.strip() for f in spec.split(',') if f.strip()]
  if not folders:
    raise ValueError("config.data.source is 'photos' but no folder is set "
                     '(config.data.photos_dir, config.data.val_photos_dir)')
  return folders


def _check_source(config: ml_collections.ConfigDict) -> None:
  if config.data.source not in SOURCES:
    raise ValueError(f'config.data.source must be one of {SOURCES}, got {config.data.source!r}')


def train_source(config: ml_collections.ConfigDict) -> pipeline.Source:
  """The training examples of ``config.data`` as a random-access ``pipeline.Source``."""
  _check_source(config)
  data = config.data
  if data.source == 'reds':
    from jdsr.data import reds_tfds
    return reds_tfds.train_source(data.reds_manual_dir, data.reds_data_dir)
  return pipeline.PhotoSource(_folders(data.photos_dir), _degradation(config), config.seed)


def _center_crop(image: np.ndarray, h: int, w: int) -> np.ndarray:
  top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
  return image[top:top + h, left:left + w]


def validation_set(config: ml_collections.ConfigDict) -> list[dict]:
  """``config.data.val_count`` validation examples as float32 arrays, all cropped to one size.

  The LR images are centre-cropped to ``config.data.val_lr_size``² (or, if 0,
  to the largest multiple of 8 that every example has), the HR ones to the
  same region. For REDS the sharp LR is the sharp HR downscaled with
  ``degrade.bicubic_down`` (the phase-1 target is only a monitor here).
  """
  _check_source(config)
  data, scale = config.data, config.model.scale
  if not data.val_count:
    return []
  if data.source == 'reds':
    from jdsr.data import reds_tfds
    ds = reds_tfds.load(data.val_split, data.reds_manual_dir, data.reds_data_dir)
    raw = []
    for example in ds.take(data.val_count).as_numpy_iterator():
      hr = pixels.to_float(example['sharp_hr'])
      raw.append({'id': example['id'].decode(), 'blur_lr': pixels.to_float(example['blur_lr']),
                  'sharp_hr': hr, 'sharp_lr': degrade.bicubic_down(hr, scale)})
  else:
    source = pipeline.PhotoSource(_folders(data.val_photos_dir), _degradation(config),
                                  config.seed + 1)
    raw = [source.load(i, 0) for i in range(min(data.val_count, len(source)))]
  size = data.val_lr_size
  h = size or min(e['blur_lr'].shape[0] for e in raw) // 8 * 8
  w = size or min(e['blur_lr'].shape[1] for e in raw) // 8 * 8
  out = []
  for e in raw:
    if e['blur_lr'].shape[0] < h or e['blur_lr'].shape[1] < w:
      raise ValueError(f"validation image {e['id']} is smaller than the {h}x{w} crop "
                       '(config.data.val_lr_size)')
    out.append({'id': str(e['id']),
                'blur_lr': _center_crop(pixels.to_float(e['blur_lr']), h, w),
                'sharp_lr': _center_crop(pixels.to_float(e['sharp_lr']), h, w),
                'sharp_hr': _center_crop(pixels.to_float(e['sharp_hr']), scale * h, scale * w)})
  return out
