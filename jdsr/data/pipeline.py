"""The tf.data input pipeline for training: aligned random crops, dihedral augmentation, batches.

A training example is a dict of three images of one scene, H×W×3, uint8 or
float in [0, 1]: 'blur_lr' (the blurry LR input), 'sharp_lr' (the phase-1
target) and 'sharp_hr' (scale·H × scale·W), and 'id'. Examples come from a
random-access ``Source``: REDS train (``jdsr.data.reds_tfds.TrainSource``, whose
crops decode only the tiles they cover), ``SequenceSource`` over any sequence of
examples (a list in memory), or ``PhotoSource`` over a folder of sharp photos
degraded on the fly.

* ``shard_order``: which (epoch, index) this host loads next: a new seeded
  permutation every epoch, this host's blocks of each global batch (the same
  global batches on any number of hosts), from any position on.
* ``crop_and_augment``: a lr_size² LR crop at a random (h, w), the HR crop at
  (scale·h, scale·w) and the same crop of the sharp LR, then one of the 8
  dihedral transforms (bit 0 flip W, bit 1 flip H, bit 2 transpose, as
  ``jdsr.inference.forward.dihedral``) on all three; cropped first, then float32 in
  [0, 1]. Stateless: the same seed gives the same crop and transform.
* ``train_batches``: load in that order only the images the phase uses, crop
  and augment (seed from (seed, global element index)), in parallel, batch,
  prefetch. A pure function of its arguments, so a resumed run asks for
  ``start=`` the elements it has consumed and gets the very batches it would
  have had: nothing is read to skip the rest.
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

from jdsr.io import imagefile, pixels

IMAGE_KEYS = ('blur_lr', 'sharp_lr', 'sharp_hr')

Degrader = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def _to_float(image: tf.Tensor) -> tf.Tensor:
  """The tf.data twin of ``jdsr.io.pixels.to_float``: uint8 / 255, uint16 / 65535, float cast."""
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


def crop_origin(draws: tuple[int, int], lr_shape: tuple[int, int], size: int,
                name: str = 'an example') -> tuple[int, int]:
  """The LR crop's (top, left) for two random draws in [0, 2**31 - 1): uniform over every corner that fits.

  The crop of ``crop_and_augment`` and of a source's ``load_crop``: the same
  draws give the same crop either way. An image smaller than the crop is a
  ValueError naming it.
  """
  h, w = (int(n) for n in lr_shape)
  if h < size or w < size:
    raise ValueError(f'{name}: the LR image (H W [{h} {w}]) is smaller than the {size}x{size} crop '
                     '(config.data.lr_size)')
  return int(draws[0]) % (h - size + 1), int(draws[1]) % (w - size + 1)


def _draws(seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """The crop's two draws (int32 in [0, 2**31 - 1)) and the dihedral transform k (0 to 7) of ``seed``."""
  h_seed, w_seed, k_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  draw = lambda s: tf.random.stateless_uniform([], s, 0, 2**31 - 1, dtype=tf.int32)
  k = tf.random.stateless_uniform([], k_seed, 0, 8, dtype=tf.int32)
  return draw(h_seed), draw(w_seed), k


def _finish(crops: dict, k: tf.Tensor, lr_size: int, scale: int) -> dict:
  """The dihedral transform k of each image crop, then float32 in [0, 1]: crop first, convert after."""
  out = dict(crops)
  for key in IMAGE_KEYS:
    if key in out:
      size = lr_size * scale if key == 'sharp_hr' else lr_size
      out[key] = tf.ensure_shape(_to_float(dihedral(out[key], k)), [size, size, 3])
  return out


def crop_and_augment(example: dict, seed: tf.Tensor, lr_size: int = 64, scale: int = 4) -> dict:
  """Aligned random crops of 'blur_lr', 'sharp_lr' (lr_size²) and 'sharp_hr' ((scale·lr_size)²), one dihedral transform.

  ``seed``: shape [2] integer, for the stateless random ops. The crop's top-left
  corner is uniform over every LR position that fits (``crop_origin``); the HR
  crop is at scale× that corner. 'blur_lr' is required, the other two are
  cropped if present. The images may be uint8, uint16 (converted as
  ``jdsr.io.pixels.to_float`` does) or float; they are cropped first and returned
  as float32 in [0, 1]; other keys (such as 'id') pass through. An image smaller
  than its crop, or an HR image that is not scale× the LR, is an error (see the
  module docstring).
  """
  hr_size = lr_size * scale
  keys = [key for key in IMAGE_KEYS if key in example]
  images = {key: tf.convert_to_tensor(example[key]) for key in keys}
  for key in keys:
    _check_static(key, images[key].shape, hr_size if key == 'sharp_hr' else lr_size)

  lr_shape = tf.shape(images['blur_lr'])[:2]
  name = example.get('id', tf.constant('an example'))

  def check(condition, problem: str) -> tf.Operation:
    # The message names the example: a training run's data error says which file it is.
    # (ASCII only: TF shows other characters of an eager assertion as escaped bytes.)
    message = tf.strings.format('{}: ' + problem, [name, lr_shape], summarize=-1)
    return tf.debugging.Assert(tf.reduce_all(condition), [message])

  checks = [check(lr_shape >= lr_size, f'the LR image (H W {{}}) is smaller than the {lr_size}x{lr_size} '
                  'crop (config.data.lr_size)')]
  if 'sharp_lr' in images:
    checks.append(check(tf.shape(images['sharp_lr'])[:2] == lr_shape,
                        'sharp_lr and blur_lr (H W {}) differ in size'))
  if 'sharp_hr' in images:
    checks.append(check(tf.shape(images['sharp_hr'])[:2] == lr_shape * scale,
                        f'sharp_hr is not {scale}x the LR size (H W {{}})'))
  with tf.control_dependencies(checks):
    draw_h, draw_w, k = _draws(seed)
    h = draw_h % (lr_shape[0] - lr_size + 1)
    w = draw_w % (lr_shape[1] - lr_size + 1)

  out = dict(example)
  for key in keys:
    if key == 'sharp_hr':
      out[key] = images[key][scale * h:scale * h + hr_size, scale * w:scale * w + hr_size]
    else:
      out[key] = images[key][h:h + lr_size, w:w + lr_size]
  return _finish(out, k, lr_size, scale)


def photo_seed(seed: int, epoch: int, index: int) -> int:
  """The degradation seed of image `index` in epoch `epoch`: a hash of the three."""
  return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class Source(Protocol):
  """Random access to training examples: ``len(source)`` of them, ``source.load(index, epoch)``.

  ``load`` returns a dict of 'blur_lr', 'sharp_lr' (H×W×3) and 'sharp_hr'
  (scale·H × scale·W × 3) and 'id' (str or bytes); the images are of the
  source's ``dtype``: uint8, or float32 in [0, 1]. ``epoch`` lets a source vary
  an example from epoch to epoch (new blur kernels).

  A source may also have ``load_crop(index, epoch, draws, size, keys, scale)``:
  only the images ``keys`` of the example, cropped to size² (LR) and
  (scale·size)² (HR) at ``crop_origin(draws, lr_shape, size, id)``, uint8,
  and 'id'. ``train_batches`` then uses it, to decode no more than the crop
  (``jdsr.data.reds_tfds.TrainSource``).
  """

  dtype: type

  def __len__(self) -> int: ...

  def load(self, index: int, epoch: int) -> dict: ...


class SequenceSource:
  """Random access over a sequence of example dicts, the same every epoch (a list in memory, say).

  The sequence is kept as it is, not copied. ``dtype`` is that of the first
  example's images: uint8, else float32 (other dtypes are converted as
  ``jdsr.io.pixels.to_float`` does).
  """

  def __init__(self, examples: Sequence[dict]):
    self.examples = examples
    first = np.asarray(examples[0]['blur_lr']) if len(examples) else np.zeros(0, np.uint8)
    self.dtype = np.uint8 if first.dtype == np.uint8 else np.float32

  def __len__(self) -> int:
    return len(self.examples)

  def load(self, index: int, epoch: int) -> dict:
    del epoch
    return self.examples[index]


class PhotoSource:
  """Sharp photos from `folder` (or several, in turn; each in ``imagefile.list_images`` order), degraded on the fly.

  ``load(i, e)`` reads photo i and degrades it with
  ``degradation(rgb, seed=photo_seed(seed, e, i))`` (for example
  ``jdsr.data.degrade.Degradation()``): every epoch sees new blur kernels,
  reproducibly. 'id' is the file name. An empty folder is a ValueError.
  """

  dtype = np.float32  # the degraded images are not quantized

  def __init__(self, folder: str | os.PathLike | Sequence[str | os.PathLike],
               degradation: Degrader, seed: int):
    folders = [folder] if isinstance(folder, (str, os.PathLike)) else list(folder)
    self.paths = [path for f in folders for path in imagefile.list_images(f)]
    if not self.paths:
      raise ValueError(f'no images in {", ".join(map(os.fspath, folders))}')
    self.degradation, self.seed = degradation, seed

  def __len__(self) -> int:
    return len(self.paths)

  def load(self, index: int, epoch: int) -> dict:
    rgb = imagefile.read_image(self.paths[index]).rgb
    blur_lr, sharp_lr, sharp_hr = self.degradation(rgb, seed=photo_seed(self.seed, epoch, index))
    return {'blur_lr': blur_lr, 'sharp_lr': sharp_lr, 'sharp_hr': sharp_hr,
            'id': self.paths[index].name}


def _name(example: dict, index) -> bytes:
  name = example.get('id', str(int(index)))
  return name if isinstance(name, bytes) else str(name).encode()


def examples(source: Source, order: tf.data.Dataset, keys: Sequence[str] = IMAGE_KEYS
             ) -> tf.data.Dataset:
  """``source.load`` mapped over a dataset of (epoch, index) pairs: dicts of the images ``keys`` and 'id'.

  The images keep the source's ``dtype`` (uint8 or float32): convert after cropping.
  """
  return order.map(_loader(source, keys), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _loader(source: Source, keys: Sequence[str]) -> Callable[[tf.Tensor, tf.Tensor], dict]:
  """(epoch, index) -> ``source.load``'s images ``keys`` and 'id', in the source's dtype."""
  dtype = np.dtype(source.dtype)

  def load(epoch: np.int64, index: np.int64) -> tuple[np.ndarray, ...]:
    example = source.load(int(index), int(epoch))
    name = _name(example, index)
    images = [np.asarray(example[key]) for key in keys]
    if dtype == np.uint8:
      if any(image.dtype != np.uint8 for image in images):
        raise TypeError(f'{name.decode(errors="replace")}: the source\'s images are uint8, this '
                        f'example has {", ".join(str(i.dtype) for i in images)}')
    else:
      images = [pixels.to_float(image) for image in images]
    return (*images, name)

  def to_dict(epoch: tf.Tensor, index: tf.Tensor) -> dict:
    *images, name = tf.numpy_function(load, [epoch, index], [tf.as_dtype(dtype)] * len(keys)
                                      + [tf.string], stateful=False)
    out = {key: tf.ensure_shape(image, [None, None, 3]) for key, image in zip(keys, images)}
    out['id'] = tf.ensure_shape(name, [])
    return out

  return to_dict


def _crops(source: Source, keys: Sequence[str], lr_size: int, scale: int
           ) -> Callable[[tf.Tensor, tuple, tf.Tensor], dict]:
  """(j, (epoch, index), seed) -> the augmented crops of ``source.load_crop``: ``crop_and_augment``'s crop."""

  def load(epoch: np.int64, index: np.int64, draw_h: np.int32, draw_w: np.int32):
    example = source.load_crop(int(index), int(epoch), (int(draw_h), int(draw_w)), lr_size, keys,
                               scale)
    return (*(example[key] for key in keys), _name(example, index))

  def crop(j: tf.Tensor, order: tuple, seed: tf.Tensor) -> dict:
    del j
    epoch, index = order
    draw_h, draw_w, k = _draws(seed)
    *images, name = tf.numpy_function(load, [epoch, index, draw_h, draw_w],
                                      [tf.uint8] * len(keys) + [tf.string], stateful=False)
    out = {key: image for key, image in zip(keys, images)}
    out['id'] = tf.ensure_shape(name, [])
    return _finish(out, k, lr_size, scale)

  return crop


def shard_order(size: int, *, seed: int, batch_size: int = 1, shard: tuple[int, int] = (0, 1),
                start: int = 0, epochs: int | None = None) -> tf.data.Dataset:
  """(j, (epoch, index)): the examples this shard (host) loads, from its `start`-th on, and their global position j.

  Every shard walks one global order: each epoch visits ``range(size)`` in a
  new permutation seeded by (seed, epoch), one epoch after the other. The
  order is cut into global batches of ``batch_size`` × shard count, and shard
  (i, n) takes the i-th block of ``batch_size`` of each. So a global batch is
  the same on any number of hosts (the hosts' blocks in process order), and
  element j depends on nothing but (size, seed, j): resuming at ``start`` =
  elements this shard has consumed loads nothing before it. ``epochs``: None
  for endless.
  """
  index, count = shard
  if not 0 <= index < count:
    raise ValueError(f'shard index must be in [0, {count}), got {index}')
  if size < 1:
    raise ValueError('there are no examples to train on')
  first = (start // batch_size) * batch_size * count + index * batch_size + start % batch_size
  first_epoch, offset = divmod(first, size)
  last = np.iinfo(np.int64).max if epochs is None else epochs

  def epoch_order(epoch: tf.Tensor) -> tf.data.Dataset:
    epoch_seed = tf.cast(seed, tf.int64) * 1_000_003 + epoch
    perm = tf.data.Dataset.range(size).shuffle(size, seed=epoch_seed,
                                               reshuffle_each_iteration=False)
    return perm.map(lambda i: (epoch, i))

  order = tf.data.Dataset.range(first_epoch, last).flat_map(epoch_order).skip(offset)
  order = order.enumerate(start=first)
  if count > 1:
    order = order.filter(lambda j, _: (j // batch_size) % count == index)
  return order


def train_batches(source: Source, *, batch_size: int, seed: int, start: int = 0, lr_size: int = 64,
                  scale: int = 4, shard: tuple[int, int] = (0, 1), epochs: int | None = None,
                  keys: Sequence[str] = IMAGE_KEYS, threads: int | None = None) -> tf.data.Dataset:
  """Batches of aligned, augmented training crops: dicts of float32 N×H×W×3 (``keys``) and 'id'.

  The examples come in ``shard_order``; the one at global position j is
  cropped with seed fold_in([seed, 0], j). The same arguments give the same
  batches, and ``train_batches(..., start=k·batch_size)`` gives exactly the
  batches after the k-th: the data-iterator position of a resumed run.
  ``shard=(i, n)``: this host's ``batch_size`` of each global batch of
  n·``batch_size`` (the same global batches as one host with n·``batch_size``).
  Incomplete batches are dropped.

  ``keys``: the images a phase uses ('blur_lr' and its targets); a source with
  ``load_crop`` decodes only those, and only the crop of each, with the same
  crops as ``load`` + ``crop_and_augment``. Loading runs in parallel on
  ``threads`` threads (None: tf.data's own, on every core).
  """
  keys = tuple(key for key in IMAGE_KEYS if key in keys)
  if 'blur_lr' not in keys:
    raise ValueError(f"keys must include 'blur_lr', got {keys}")
  order = shard_order(len(source), seed=seed, batch_size=batch_size, shard=shard, start=start,
                      epochs=epochs)
  base = tf.constant([seed, 0], tf.int64)
  seed_of = lambda j: tf.random.experimental.stateless_fold_in(base, j)
  parallel = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  if hasattr(source, 'load_crop'):
    crop = _crops(source, keys, lr_size, scale)
    ds = order.map(lambda j, o: crop(j, o, seed_of(j)), **parallel)
  else:
    load = _loader(source, keys)
    ds = order.map(lambda j, o: crop_and_augment(load(*o), seed_of(j), lr_size, scale), **parallel)
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = True
  if threads is not None:
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
  return ds.with_options(options)


def as_numpy(dataset: tf.data.Dataset) -> Iterator[dict]:
  """The elements of `dataset` as dicts of NumPy arrays (strings as bytes)."""
  return dataset.as_numpy_iterator()
