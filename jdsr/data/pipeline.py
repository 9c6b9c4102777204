"""The training input pipeline: aligned random crops, dihedral augmentation, batches (grain).

A training example is a dict of three images of one scene, H×W×3, uint8 or
float in [0, 1]: 'blur_lr' (the blurry LR input), 'sharp_lr' (the phase-1
target) and 'sharp_hr' (scale·H × scale·W), and 'id'. Examples come from a
random-access ``Source``: REDS train (``jdsr.data.reds_tfds.TrainSource``, whose
crops decode only the tiles they cover), ``SequenceSource`` over any sequence of
examples (a list in memory), or ``PhotoSource`` over a folder of sharp photos
degraded on the fly.

The pipeline is a ``grain.MapDataset`` over this host's element positions, so
every batch is a pure function of its position; nothing in it needs TensorFlow.

* ``HostOrder``: which (epoch, index) this host's t-th element is: every epoch
  visits the examples in a new permutation seeded by (seed, epoch), the order
  is cut into global batches, and each host takes its block of each (the same
  global batches on any number of hosts).
* ``crop_and_augment``: a lr_size² LR crop at ``crop_origin``, the HR crop at
  (scale·h, scale·w) and the same crop of the sharp LR, then one of the 8
  dihedral transforms (bit 0 flip W, bit 1 flip H, bit 2 transpose, as
  ``jdsr.inference.forward.dihedral``) on all three; cropped first, then float32
  in [0, 1]. The crop and the transform come from ``draws(seed, j)``, j the
  element's global position.
* ``train_batches``: load in that order only the images the phase uses, crop
  and augment, batch, on ``threads`` threads (and ``workers`` processes). Its
  iterator's state (``get_state``/``set_state``) is the number of batches
  consumed: a resumed run sets it and gets the very batches it would have had,
  reading nothing it skips.

Images smaller than one crop, or of mismatched sizes, are a ValueError naming
the example, raised when that example is loaded.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, Protocol, Sequence

import grain
import numpy as np

from jdsr.io import imagefile, pixels

IMAGE_KEYS = ('blur_lr', 'sharp_lr', 'sharp_hr')
_DRAW_MAX = 2**31 - 1  # crop draws are in [0, _DRAW_MAX)

Degrader = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
  """The k-th of the 8 dihedral transforms of an H×W×C image (bit 0: flip W, bit 1: flip H, bit 2: transpose)."""
  if k & 1:
    image = image[:, ::-1]
  if k & 2:
    image = image[::-1]
  if k & 4:
    image = image.transpose(1, 0, 2)
  return image


def draws(seed: int, j: int) -> tuple[int, int, int]:
  """Element j's crop draws (two ints in [0, 2**31 - 1)) and dihedral transform (0 to 7)."""
  rng = np.random.default_rng([seed, j])
  h, w = rng.integers(0, _DRAW_MAX, size=2)
  return int(h), int(w), int(rng.integers(0, 8))


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


def _to_float(image: np.ndarray, name: str) -> np.ndarray:
  if image.dtype not in (np.uint8, np.uint16) and not np.issubdtype(image.dtype, np.floating):
    raise TypeError(f'{name}: images must be uint8, uint16 or float in [0, 1], got {image.dtype}')
  return pixels.to_float(image)


def _finish(crops: dict, k: int, lr_size: int, scale: int) -> dict:
  """The dihedral transform k of each image crop, then float32 in [0, 1]: crop first, convert after."""
  out = dict(crops)
  name = _text(crops.get('id', 'an example'))
  for key in IMAGE_KEYS:
    if key in out:
      size = lr_size * scale if key == 'sharp_hr' else lr_size
      image = _to_float(dihedral(np.asarray(out[key]), k), name)
      if image.shape != (size, size, 3):
        raise ValueError(f'{name}: the {key} crop is {image.shape}, expected ({size}, {size}, 3)')
      out[key] = np.ascontiguousarray(image)
  return out


def crop_and_augment(example: dict, drawn: tuple[int, int, int], lr_size: int = 64,
                     scale: int = 4) -> dict:
  """Aligned random crops of 'blur_lr', 'sharp_lr' (lr_size²) and 'sharp_hr' ((scale·lr_size)²), one dihedral transform.

  ``drawn``: ``draws(seed, j)``, the crop's two draws and the transform. The
  crop's top-left corner is uniform over every LR position that fits
  (``crop_origin``); the HR crop is at scale× that corner. 'blur_lr' is
  required, the other two are cropped if present. The images may be uint8,
  uint16 (converted as ``jdsr.io.pixels.to_float`` does) or float; they are
  cropped first and returned as float32 in [0, 1]; other keys (such as 'id')
  pass through. An image smaller than its crop, or of the wrong size for its
  blur LR, is a ValueError naming the example.
  """
  name = _text(example.get('id', 'an example'))
  keys = [key for key in IMAGE_KEYS if key in example]
  images = {key: np.asarray(example[key]) for key in keys}
  lr_shape = images['blur_lr'].shape[:2]
  if 'sharp_lr' in images and images['sharp_lr'].shape[:2] != lr_shape:
    raise ValueError(f'{name}: sharp_lr and blur_lr (H W {list(lr_shape)}) differ in size')
  if 'sharp_hr' in images and images['sharp_hr'].shape[:2] != tuple(scale * n for n in lr_shape):
    raise ValueError(f'{name}: sharp_hr is not {scale}x the LR size (H W {list(lr_shape)})')
  h, w = crop_origin(drawn[:2], lr_shape, lr_size, name)
  out = dict(example)
  for key in keys:
    if key == 'sharp_hr':
      hr = scale * lr_size
      out[key] = images[key][scale * h:scale * h + hr, scale * w:scale * w + hr]
    else:
      out[key] = images[key][h:h + lr_size, w:w + lr_size]
  return _finish(out, drawn[2], lr_size, scale)


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


def _text(name) -> str:
  return name.decode(errors='replace') if isinstance(name, bytes) else str(name)


def _name(example: dict, index) -> bytes:
  name = example.get('id', str(int(index)))
  return name if isinstance(name, bytes) else str(name).encode()


def load(source: Source, index: int, epoch: int, keys: Sequence[str] = IMAGE_KEYS) -> dict:
  """``source.load``'s images ``keys`` (in the source's dtype) and 'id' as bytes."""
  example = source.load(int(index), int(epoch))
  name = _name(example, index)
  images = {key: np.asarray(example[key]) for key in keys}
  if np.dtype(source.dtype) == np.uint8:
    if any(image.dtype != np.uint8 for image in images.values()):
      raise TypeError(f'{name.decode(errors="replace")}: the source\'s images are uint8, this '
                      f'example has {", ".join(str(i.dtype) for i in images.values())}')
  else:
    images = {key: pixels.to_float(image) for key, image in images.items()}
  return {**images, 'id': name}


class HostOrder:
  """This host's t-th element: its global position j and the example (epoch, index) there.

  Every host walks one global order: each epoch visits ``range(size)`` in a new
  permutation seeded by (seed, epoch), one epoch after the other. The order is
  cut into global batches of ``batch_size`` × host count, and host (i, n) takes
  the i-th block of ``batch_size`` of each. So a global batch is the same on
  any number of hosts (the hosts' blocks in process order), and element j
  depends on nothing but (size, seed, j).
  """

  def __init__(self, size: int, seed: int, batch_size: int = 1, shard: tuple[int, int] = (0, 1)):
    index, count = shard
    if not 0 <= index < count:
      raise ValueError(f'shard index must be in [0, {count}), got {index}')
    if size < 1:
      raise ValueError('there are no examples to train on')
    self.size, self.seed, self.batch_size, self.shard = size, seed, batch_size, shard
    self._permutations: dict[int, np.ndarray] = {}

  def position(self, t: int) -> int:
    """The global position j of this host's t-th element."""
    b, (index, count) = self.batch_size, self.shard
    return (t // b) * b * count + index * b + t % b

  def count(self, epochs: int) -> int:
    """How many of the first ``epochs`` epochs' elements are this host's."""
    total, (index, count), b = epochs * self.size, self.shard, self.batch_size
    full, rest = divmod(total, b * count)
    return full * b + min(max(rest - index * b, 0), b)

  def __call__(self, j: int) -> tuple[int, int]:
    """(epoch, index) of global position j."""
    epoch, i = divmod(int(j), self.size)
    if epoch not in self._permutations:
      if len(self._permutations) > 4:
        self._permutations.clear()
      self._permutations[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.size)
    return epoch, int(self._permutations[epoch][i])


def element_fn(source: Source, *, seed: int, batch_size: int, shard: tuple[int, int] = (0, 1),
               lr_size: int = 64, scale: int = 4, keys: Sequence[str] = IMAGE_KEYS
               ) -> Callable[[int], dict]:
  """This host's t-th training element, augmented: what ``train_batches`` maps over t."""
  keys = tuple(key for key in IMAGE_KEYS if key in keys)
  if 'blur_lr' not in keys:
    raise ValueError(f"keys must include 'blur_lr', got {keys}")
  order = HostOrder(len(source), seed, batch_size, shard)
  cropped = hasattr(source, 'load_crop')

  def element(t: int) -> dict:
    j = order.position(t)
    epoch, index = order(j)
    drawn = draws(seed, j)
    if cropped:
      example = source.load_crop(index, epoch, drawn[:2], lr_size, keys, scale)
      return _finish({**example, 'id': _name(example, index)}, drawn[2], lr_size, scale)
    return crop_and_augment(load(source, index, epoch, keys), drawn, lr_size, scale)

  return element


def train_batches(source: Source, *, batch_size: int, seed: int, start: int = 0, lr_size: int = 64,
                  scale: int = 4, shard: tuple[int, int] = (0, 1), epochs: int | None = None,
                  keys: Sequence[str] = IMAGE_KEYS, threads: int | None = None,
                  workers: int = 0) -> grain.IterDataset:
  """Batches of aligned, augmented training crops: dicts of float32 N×H×W×3 (``keys``) and 'id' (bytes).

  The examples come in ``HostOrder``; the one at global position j is cropped
  with ``draws(seed, j)``. The same arguments give the same batches, and
  ``train_batches(..., start=k·batch_size)`` gives exactly the batches after
  the k-th (as does setting the iterator's state to ``{'next_index': k}``).
  ``shard=(i, n)``: this host's ``batch_size`` of each global batch of
  n·``batch_size`` (the same global batches as one host with n·``batch_size``).
  Incomplete batches are dropped; ``epochs``: None for endless.

  ``keys``: the images a phase uses ('blur_lr' and its targets); a source with
  ``load_crop`` decodes only those, and only the crop of each, with the same
  crops as ``load`` + ``crop_and_augment``. Examples load on ``threads``
  threads (None: one per core; PNG decoding and NumPy release the interpreter
  lock), and with ``workers`` > 0 in that many processes as well.
  """
  element = element_fn(source, seed=seed, batch_size=batch_size, shard=shard, lr_size=lr_size,
                       scale=scale, keys=keys)
  order = HostOrder(len(source), seed, batch_size, shard)
  stop = np.iinfo(np.int64).max // 2 if epochs is None else order.count(epochs)
  ds = grain.MapDataset.range(start, max(start, stop)).map(element)
  ds = ds.batch(batch_size, drop_remainder=True)
  threads = threads or os.cpu_count() or 1
  iterable = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                                  prefetch_buffer_size=2 * threads))
  if workers:
    from absl import flags
    if not flags.FLAGS.is_parsed():  # grain's workers read its absl flags: their defaults here
      flags.FLAGS.mark_as_parsed()
    iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return iterable


def as_numpy(dataset) -> Iterator[dict]:
  """An iterator over ``dataset``'s batches: dicts of NumPy arrays ('id': bytes)."""
  return iter(dataset)
