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

import logging

import ml_collections
import numpy as np

from jdsr.io import imagefile, pixels
from jdsr.data import degrade, pipeline, reds

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


def _spread(items: list, count: int | None) -> list:
  """``count`` of ``items`` evenly spaced (all if None): a subset of Val300 spans every sequence."""
  if count is None or count >= len(items):
    return items
  return [items[i * len(items) // count] for i in range(count)]


def _reds_validation(config: ml_collections.ConfigDict, keys: tuple[str, ...]) -> list[dict]:
  data, scale = config.data, config.model.scale
  root = data.reds_manual_dir
  subset = {'val300': 'val300', 'val': None, 'validation': None}.get(data.val_split, '?')
  if subset == '?':
    raise ValueError(f"config.data.val_split must be 'val300' or 'val', got {data.val_split!r}")
  official_lr = 'sharp_lr' in keys and reds.has_sharp_lr(root, 'val')
  if 'sharp_lr' in keys and not official_lr:
    logging.warning('REDS val_sharp_bicubic is not under %s: phase-1 validation scores against '
                    "the sharp HR downscaled by Pillow's bicubic instead of the official sharp "
                    'LR frames', root)
  frames = _spread(reds.list_frames(root, 'val', subset, with_sharp_lr=official_lr),
                   data.val_count)
  items = []
  for frame in frames:
    blur_lr, sharp_hr = (imagefile.read_image(p).rgb for p in (frame.blur_lr, frame.sharp_hr))
    item = {'id': frame.id, 'blur_lr': blur_lr, 'sharp_hr': sharp_hr}
    if 'sharp_lr' in keys:
      item['sharp_lr'] = (imagefile.read_image(frame.sharp_lr).rgb if official_lr
                          else degrade.bicubic_down(sharp_hr, scale))
    if data.val_lr_size is None:  # the reference's crop of REDS frames: 176×320 → 704×1280
      item['blur_lr'], item['sharp_hr'] = reds.crop_like_reference(item['blur_lr'], sharp_hr)
      if 'sharp_lr' in keys:
        item['sharp_lr'] = item['sharp_lr'][reds.LR_ROWS]
    items.append(item)
  return items


def validation_set(config: ml_collections.ConfigDict,
                   keys: tuple[str, ...] = ('blur_lr', 'sharp_lr', 'sharp_hr')) -> list[dict]:
  """The validation examples of ``config.data``: dicts of uint8 images (``keys``) and 'id'.

  REDS (``config.data.val_split``: 'val300' or 'val') is read from the
  extracted folders. Its phase-1 target is the official sharp LR
  (val_sharp_bicubic) when it was downloaded, else the sharp HR downscaled by
  ``degrade.bicubic_down`` (with a warning in the log). ``config.data.val_count``:
  None for all, N for N frames spread evenly over the set (so over every
  sequence), 0 for no validation. ``config.data.val_lr_size``: None for REDS's
  reference crop (320×176 → 1280×704; photos: the largest multiple of 8 they
  all have), N for a centre crop of N×N (the HR crop, the same region). Where
  an image is smaller than N in a dimension, every crop is, in that dimension,
  the largest multiple of 8 all the images have (and the log says so).
  """
  _check_source(config)
  data, scale = config.data, config.model.scale
  if data.val_count == 0:
    return []
  if data.source == 'reds':
    raw = _reds_validation(config, keys)
  else:
    source = pipeline.PhotoSource(_folders(data.val_photos_dir), _degradation(config),
                                  config.seed + 1)
    raw = [source.load(i, 0) for i in _spread(list(range(len(source))), data.val_count)]
  if not raw:
    return []
  size = data.val_lr_size
  smallest = {axis: min(raw, key=lambda e: e['blur_lr'].shape[axis]) for axis in (0, 1)}
  h, w = (smallest[axis]['blur_lr'].shape[axis] // 8 * 8 for axis in (0, 1))
  if min(h, w) == 0:
    e = smallest[0] if h == 0 else smallest[1]
    raise ValueError(f"validation image {e['id']} is {e['blur_lr'].shape[1]}x"
                     f"{e['blur_lr'].shape[0]} at low resolution: validating needs 8x8 at least")
  if size is not None:
    if h < size or w < size:
      small = smallest[0] if h < size else smallest[1]
      logging.warning('validation image %s is smaller than the %dx%d crop '
                      '(config.data.val_lr_size): every validation crop is %dx%d', small['id'],
                      size, size, min(size, w), min(size, h))
    h, w = min(size, h), min(size, w)
  out = []
  for e in raw:
    item = {'id': str(e['id'])}
    for key in keys:
      factor = scale if key == 'sharp_hr' else 1
      item[key] = pixels.quantize(_center_crop(e[key], factor * h, factor * w))
    out.append(item)
  return out
