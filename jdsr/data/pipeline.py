"""The tf.data input pipeline for training: aligned random crops, dihedral augmentation, batches.

A training example is a dict of three images of one scene, H×W×3, uint8 or
float in [0, 1]: 'blur_lr' (the blurry LR input), 'sharp_lr' (the phase-1
target) and 'sharp_hr' (scale·H × scale·W), plus optionally 'id'. Such
examples come from the REDS tfds dataset (jdsr.data.reds_tfds, train config)
or from a folder of sharp photos degraded on the fly (``photo_examples``).

* ``crop_and_augment``: a lr_size² LR crop at a random (h, w), the HR crop at
  (scale·h, scale·w) and the same crop of the sharp LR, then one of the 8
  dihedral transforms (bit 0 flip W, bit 1 flip H, bit 2 transpose, as
  ``jdsr.inference.dihedral``) on all three; float32 in [0, 1]. Stateless:
  the same seed gives the same crop and transform.
* ``photo_examples``: an infinite dataset of synthetic (blur_lr, sharp_lr,
  sharp_hr) from photos; epoch e, image i is degraded with a seed derived
  from (seed, e, i), so every epoch sees new blur kernels, reproducibly.
* ``train_batches``: shard, shuffle (seeded, reshuffled every epoch), repeat,
  crop and augment (seed from (seed, element index)), batch, prefetch.
* ``as_numpy``: the batches as dicts of NumPy arrays, for JAX.

Images smaller than one crop are an error, not skipped: ``crop_and_augment``
raises ``tf.errors.InvalidArgumentError`` when the dataset is iterated (or
``ValueError`` when the too-small size is known statically).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from jdsr import imageio

IMAGE_KEYS = ('blur_lr', 'sharp_lr', 'sharp_hr')

Degrader = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def _to_float(image: tf.Tensor) -> tf.Tensor:
  """uint8 → float32 / 255; a float image is cast to float32 as it is."""
  if image.dtype == tf.uint8:
    return tf.cast(image, tf.float32) / 255.0
  return tf.cast(image, tf.float32)


def _check_static(name: str, shape: tf.TensorShape, size: int) -> None:
  """ValueError if a statically known height or width is smaller than `size`."""
  for dim in shape[:2]:
    if dim is not None and dim < size:
      raise ValueError(f'{name} of shape {shape} is smaller than the {size}×{size} crop')


def dihedral(image: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
  """The k-th of the 8 dihedral transforms of a square H×W×C image (bit 0: flip W, bit 1: flip H, bit 2: transpose)."""
  image = tf.cond(k % 2 == 1, lambda: tf.reverse(image, [1]), lambda: image)
  image = tf.cond((k // 2) % 2 == 1, lambda: tf.reverse(image, [0]), lambda: image)
  return tf.cond(k >= 4, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)


def crop_and_augment(example: dict, seed: tf.Tensor, lr_size: int = 64, scale: int = 4) -> dict:
  """Aligned random crops of 'blur_lr', 'sharp_lr' (lr_size²) and 'sharp_hr' ((scale·lr_size)²), one dihedral transform.

  ``seed``: shape [2] integer, for the stateless random ops. The crop's top-left
  corner is uniform over every LR position that fits; the HR crop is at scale×
  that corner. Returns float32 in [0, 1]; other keys (such as 'id') pass
  through. An image smaller than its crop, or an HR image that is not scale× the
  LR, is an error (see the module docstring).
  """
  hr_size = lr_size * scale
  images = {key: _to_float(example[key]) for key in IMAGE_KEYS}
  for key in ('blur_lr', 'sharp_lr'):
    _check_static(key, images[key].shape, lr_size)
  _check_static('sharp_hr', images['sharp_hr'].shape, hr_size)

  lr_shape = tf.shape(images['blur_lr'])[:2]
  checks = [
      tf.debugging.assert_greater_equal(lr_shape, lr_size,
                                        message=f'LR image smaller than the {lr_size}×{lr_size} crop'),
      tf.debugging.assert_equal(tf.shape(images['sharp_lr'])[:2], lr_shape,
                                message='sharp_lr and blur_lr differ in size'),
      tf.debugging.assert_equal(tf.shape(images['sharp_hr'])[:2], lr_shape * scale,
                                message=f'sharp_hr is not {scale}× the LR size'),
  ]
  with tf.control_dependencies(checks):
    h_seed, w_seed, k_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    h = tf.random.stateless_uniform([], h_seed, 0, lr_shape[0] - lr_size + 1, dtype=tf.int32)
    w = tf.random.stateless_uniform([], w_seed, 0, lr_shape[1] - lr_size + 1, dtype=tf.int32)
  k = tf.random.stateless_uniform([], k_seed, 0, 8, dtype=tf.int32)

  out = dict(example)
  for key in ('blur_lr', 'sharp_lr'):
    out[key] = images[key][h:h + lr_size, w:w + lr_size]
  out['sharp_hr'] = images['sharp_hr'][scale * h:scale * h + hr_size, scale * w:scale * w + hr_size]
  for key in IMAGE_KEYS:
    size = hr_size if key == 'sharp_hr' else lr_size
    out[key] = tf.ensure_shape(dihedral(out[key], k), [size, size, 3])
  return out


def photo_seed(seed: int, epoch: int, index: int) -> int:
  """The degradation seed of image `index` in epoch `epoch`: a hash of the three."""
  return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def photo_examples(folder: str | os.PathLike, degradation: Degrader, seed: int) -> tf.data.Dataset:
  """An infinite dataset of degraded photos from `folder`: epoch after epoch, in name order.

  Element j is image i = j mod n of epoch e = j div n (n images, from
  ``imageio.list_images``), degraded by ``degradation(rgb, seed=photo_seed(seed, e, i))``
  (e.g. ``jdsr.data.degrade.Degradation()``). Yields dicts of float32
  'blur_lr', 'sharp_lr', 'sharp_hr' and the string 'id' (the file name).
  Photos are read again for every element; an empty folder is a ValueError.
  """
  paths = imageio.list_images(folder)
  if not paths:
    raise ValueError(f'no images in {folder}')

  def load(j: np.int64) -> tuple[np.ndarray, np.ndarray, np.ndarray, bytes]:
    epoch, index = divmod(int(j), len(paths))
    rgb = imageio.read_image(paths[index]).rgb
    blur_lr, sharp_lr, sharp_hr = degradation(rgb, seed=photo_seed(seed, epoch, index))
    return blur_lr, sharp_lr, sharp_hr, paths[index].name.encode()

  def to_dict(j: tf.Tensor) -> dict:
    *images, name = tf.numpy_function(load, [j], [tf.float32] * 3 + [tf.string], stateful=False)
    out = {key: tf.ensure_shape(image, [None, None, 3]) for key, image in zip(IMAGE_KEYS, images)}
    out['id'] = tf.ensure_shape(name, [])
    return out

  return tf.data.Dataset.counter().map(to_dict)


def train_batches(examples: tf.data.Dataset, *, batch_size: int, seed: int, lr_size: int = 64,
                  scale: int = 4, shuffle_buffer: int = 256, shard: tuple[int, int] = (0, 1),
                  repeat: bool = True) -> tf.data.Dataset:
  """Batches of aligned, augmented training crops: dicts of float32 N×H×W×3 (and 'id' if present).

  ``shard``: (index, count); this host reads ``examples.shard(count, index)``.
  The shuffle is seeded and reshuffled every epoch; element j (counted after
  shuffling and repeating) is cropped with seed fold_in([seed, 0], j). The same
  arguments give the same batches. Incomplete batches are dropped.
  """
  index, count = shard
  if not 0 <= index < count:
    raise ValueError(f'shard index must be in [0, {count}), got {index}')
  ds = examples.shard(count, index)
  ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  base = tf.constant([seed, 0], tf.int64)

  def crop(j: tf.Tensor, example: dict) -> dict:
    return crop_and_augment(example, tf.random.experimental.stateless_fold_in(base, j),
                            lr_size, scale)

  ds = ds.enumerate().map(crop, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options)


def as_numpy(dataset: tf.data.Dataset) -> Iterator[dict]:
  """The elements of `dataset` as dicts of NumPy arrays (strings as bytes)."""
  return dataset.as_numpy_iterator()
