"""The tf.data input pipeline for training: aligned random crops, dihedral augmentation, batches.

A training example is a dict of three images of one scene, H×W×3, uint8 or
float in [0, 1]: 'blur_lr' (the blurry LR input), 'sharp_lr' (the phase-1
target) and 'sharp_hr' (scale·H × scale·W), and 'id'. Examples come from a
random-access ``Source``: ``SequenceSource`` over any sequence of examples (a
list in memory, or the REDS tfds data source of
``jdsr.data.reds_tfds.train_source``), or ``PhotoSource`` over a folder of sharp
photos degraded on the fly.

* ``shard_order``: which (epoch, index) this host loads next: its shard of the
  indices, a new seeded permutation every epoch, from any position on.
* ``crop_and_augment``: a lr_size² LR crop at a random (h, w), the HR crop at
  (scale·h, scale·w) and the same crop of the sharp LR, then one of the 8
  dihedral transforms (bit 0 flip W, bit 1 flip H, bit 2 transpose, as
  ``jdsr.inference.dihedral``) on all three; float32 in [0, 1]. Stateless:
  the same seed gives the same crop and transform.
* ``train_batches``: load in that order, crop and augment (seed from (seed,
  element index)), batch, prefetch. A pure function of its arguments, so a
  resumed run asks for ``start=`` the elements it has consumed and gets the
  very batches it would have had: nothing is read to skip the rest.
* ``as_numpy``: the batches as dicts of NumPy arrays, for JAX.

Images smaller than one crop are an error, not skipped: ``crop_and_augment``
raises ``tf.errors.InvalidArgumentError`` when the dataset is iterated (or
``ValueError`` when the too-small size is known statically).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import tensorflow as tf

from jdsr import imageio, pixels

IMAGE_KEYS = ('blur_lr', 'sharp_lr', 'sharp_hr')

Degrader = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def _to_float(image: tf.Tensor) -> tf.Tensor:
  """The tf.data twin of ``jdsr.pixels.to_float``: uint8 / 255, uint16 / 65535, float cast."""
  image = tf.convert_to_tensor(image)
  if image.dtype in (tf.uint8, tf.uint16):
    return tf.cast(image, tf.float32) / (255.0 if image.dtype == tf.uint8 else 65535.0)
  if image.dtype.is_floating:
    return tf.cast(image, tf.float32)
  raise TypeError(f'images must be uint8, uint16 or float in [0, 1], got {image.dtype.name}')


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
  that corner. The images may be uint8, uint16 (converted as ``jdsr.pixels.to_float``
  does) or float; returns float32 in [0, 1]; other keys (such as 'id') pass
  through. An image smaller than its crop, or an HR image that is not scale× the
  LR, is an error (see the module docstring).
  """
  hr_size = lr_size * scale
  images = {key: _to_float(example[key]) for key in IMAGE_KEYS}
  for key in ('blur_lr', 'sharp_lr'):
    _check_static(key, images[key].shape, lr_size)
  _check_static('sharp_hr', images['sharp_hr'].shape, hr_size)

  lr_shape = tf.shape(images['blur_lr'])[:2]
  name = example.get('id', tf.constant('an example'))

  def check(condition, problem: str) -> tf.Operation:
    # The message names the example: a training run's data error says which file it is.
    # (ASCII only: TF shows other characters of an eager assertion as escaped bytes.)
    message = tf.strings.format('{}: ' + problem, [name, lr_shape], summarize=-1)
    return tf.debugging.Assert(tf.reduce_all(condition), [message])

  checks = [
      check(lr_shape >= lr_size, f'the LR image (H W {{}}) is smaller than the {lr_size}x{lr_size} '
            'crop (config.data.lr_size)'),
      check(tf.shape(images['sharp_lr'])[:2] == lr_shape,
            'sharp_lr and blur_lr (H W {}) differ in size'),
      check(tf.shape(images['sharp_hr'])[:2] == lr_shape * scale,
            f'sharp_hr is not {scale}x the LR size (H W {{}})'),
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


class Source(Protocol):
  """Random access to training examples: ``len(source)`` of them, ``source.load(index, epoch)``.

  ``load`` returns a dict of 'blur_lr', 'sharp_lr' (H×W×3) and 'sharp_hr'
  (scale·H × scale·W × 3), uint8 or float in [0, 1], and 'id' (str or bytes).
  ``epoch`` lets a source vary an example from epoch to epoch (new blur kernels).
  """

  def __len__(self) -> int: ...

  def load(self, index: int, epoch: int) -> dict: ...


class SequenceSource:
  """Random access over a sequence of example dicts, the same every epoch.

  A list in memory, or a tfds split's ``builder.as_data_source(split)`` (REDS train).
  The sequence is kept as it is, not copied.
  """

  def __init__(self, examples: Sequence[dict]):
    self.examples = examples

  def __len__(self) -> int:
    return len(self.examples)

  def load(self, index: int, epoch: int) -> dict:
    del epoch
    return self.examples[index]


class PhotoSource:
  """Sharp photos from `folder` (or several, in turn; each in ``imageio.list_images`` order), degraded on the fly.

  ``load(i, e)`` reads photo i and degrades it with
  ``degradation(rgb, seed=photo_seed(seed, e, i))`` (for example
  ``jdsr.data.degrade.Degradation()``): every epoch sees new blur kernels,
  reproducibly. 'id' is the file name. An empty folder is a ValueError.
  """

  def __init__(self, folder: str | os.PathLike | Sequence[str | os.PathLike],
               degradation: Degrader, seed: int):
    folders = [folder] if isinstance(folder, (str, os.PathLike)) else list(folder)
    self.paths = [path for f in folders for path in imageio.list_images(f)]
    if not self.paths:
      raise ValueError(f'no images in {", ".join(map(os.fspath, folders))}')
    self.degradation, self.seed = degradation, seed

  def __len__(self) -> int:
    return len(self.paths)

  def load(self, index: int, epoch: int) -> dict:
    rgb = imageio.read_image(self.paths[index]).rgb
    blur_lr, sharp_lr, sharp_hr = self.degradation(rgb, seed=photo_seed(self.seed, epoch, index))
    return {'blur_lr': blur_lr, 'sharp_lr': sharp_lr, 'sharp_hr': sharp_hr,
            'id': self.paths[index].name}


def examples(source: Source, order: tf.data.Dataset) -> tf.data.Dataset:
  """``source.load`` mapped over a dataset of (epoch, index) pairs: dicts of float32 images and 'id'."""

  def load(epoch: np.int64, index: np.int64) -> tuple[np.ndarray, ...]:
    example = source.load(int(index), int(epoch))
    name = example.get('id', str(int(index)))
    name = name if isinstance(name, bytes) else str(name).encode()
    return (*(pixels.to_float(example[key]) for key in IMAGE_KEYS), name)

  def to_dict(epoch: tf.Tensor, index: tf.Tensor) -> dict:
    *images, name = tf.numpy_function(load, [epoch, index], [tf.float32] * 3 + [tf.string],
                                      stateful=False)
    out = {key: tf.ensure_shape(image, [None, None, 3]) for key, image in zip(IMAGE_KEYS, images)}
    out['id'] = tf.ensure_shape(name, [])
    return out

  return order.map(to_dict, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def shard_order(size: int, *, seed: int, shard: tuple[int, int] = (0, 1), start: int = 0,
                epochs: int | None = None) -> tf.data.Dataset:
  """The (epoch, index) pairs this shard visits, from its `start`-th on.

  Shard (i, n) owns the indices i, i + n, i + 2n, ... of ``range(size)``; each
  epoch visits all of them in a new order, a permutation seeded by (seed,
  epoch). Element j of the order depends on nothing but (size, seed, shard, j),
  so resuming at ``start`` = elements already consumed costs nothing: no
  element before it is loaded. ``epochs``: None for endless.
  """
  index, count = shard
  if not 0 <= index < count:
    raise ValueError(f'shard index must be in [0, {count}), got {index}')
  owned = np.arange(index, size, count, dtype=np.int64)
  if not len(owned):
    raise ValueError(f'shard {index} of {count} owns none of the {size} examples')
  first_epoch, offset = divmod(start, len(owned))
  last = np.iinfo(np.int64).max if epochs is None else epochs

  def epoch_order(epoch: tf.Tensor) -> tf.data.Dataset:
    epoch_seed = tf.cast(seed, tf.int64) * 1_000_003 + epoch
    perm = tf.data.Dataset.from_tensor_slices(owned).shuffle(
        len(owned), seed=epoch_seed, reshuffle_each_iteration=False)
    return perm.map(lambda i: (epoch, i))

  return tf.data.Dataset.range(first_epoch, last).flat_map(epoch_order).skip(offset)


def train_batches(source: Source, *, batch_size: int, seed: int, start: int = 0, lr_size: int = 64,
                  scale: int = 4, shard: tuple[int, int] = (0, 1), epochs: int | None = None
                  ) -> tf.data.Dataset:
  """Batches of aligned, augmented training crops: dicts of float32 N×H×W×3 and 'id'.

  The examples come in ``shard_order``; the j-th (counting from the first
  element of epoch 0, so ``start`` included) is cropped with seed
  fold_in([seed, 0], j). The same arguments give the same batches, and
  ``train_batches(..., start=k·batch_size)`` gives exactly the batches after
  the k-th: the data-iterator position of a resumed run. Incomplete batches
  are dropped.
  """
  order = shard_order(len(source), seed=seed, shard=shard, start=start, epochs=epochs)
  base = tf.constant([seed, 0], tf.int64)

  def crop(j: tf.Tensor, example: dict) -> dict:
    return crop_and_augment(example, tf.random.experimental.stateless_fold_in(base, j),
                            lr_size, scale)

  ds = examples(source, order).enumerate(start=start)
  ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options)


def as_numpy(dataset: tf.data.Dataset) -> Iterator[dict]:
  """The elements of `dataset` as dicts of NumPy arrays (strings as bytes)."""
  return dataset.as_numpy_iterator()
