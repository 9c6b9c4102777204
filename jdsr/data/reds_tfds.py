"""REDS as a TensorFlow Datasets builder, read from the official downloads.

REDS cannot be downloaded by TFDS: extract the official zips into a manual
directory (layout in ``MANUAL_DOWNLOAD_INSTRUCTIONS``) and prepare with::

  builder = Reds(config='val', data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  ds = builder.as_dataset(split='validation')

or simply ``load('validation', manual_dir, data_dir)``.

Two configs, each with its own splits and features, so that a config needs
only its own downloads and nothing is stored twice or made up:

* ``reds/val`` (the default): splits 'validation' (3,000 frames) and 'val300'
  (300), from val_blur_bicubic and val_sharp. Features 'id', 'blur_lr' and
  'sharp_hr'. (Validation during training reads the folders directly, with
  val_sharp_bicubic when it was downloaded: ``jdsr.data.sources``.)
* ``reds/train``: split 'train' (24,000 frames), from train_blur_bicubic,
  train_sharp and train_sharp_bicubic, for training: read it with
  ``train_source``. Features 'id', 'lr_shape' (H, W) and, for 'blur_lr',
  'sharp_lr' (the phase-1 target) and 'sharp_hr', the PNG bytes of the image's
  tiles (``jdsr.data.tiles``: LR tiles of ``LR_TILE``², HR tiles of
  (4·``LR_TILE``)², the same grid), so that a training crop decodes only the
  tiles it covers, and a phase only the images it uses. The tiles take about
  the room of the frames' own PNGs (0.99× on the benchmark's tree:
  ``benchmarks/input_pipeline.py`` prints the ratio). Preparing re-encodes
  every frame, on all cores.

'id' is the frame's 'SSS_FFFFFFFF' (also the example key). The images of
``reds/val`` are uint8 H×W×3, stored as the PNG bytes of the files, not
re-encoded. Examples are stored and read back in id order
(``disable_shuffling``). A folder missing for the config being prepared raises
``reds.REDSError`` naming it, before anything is written; frames are paired by
``reds.list_frames``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import importlib.util
import itertools
import logging
import os
from typing import Iterable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from jdsr import errors
from jdsr.data import pipeline, reds, tiles

LR_TILE = 32  # LR pixels; HR tiles are reds.SCALE× that
IMAGE_KEYS = pipeline.IMAGE_KEYS

SPLITS = {'train': ('train',), 'val': ('validation', 'val300')}  # config -> splits
_EXPECTED = {'train': reds.EXPECTED['train'], 'validation': reds.EXPECTED['val'],
             'val300': reds.EXPECTED['val300']}

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the REDS zips from https://seungjunnah.github.io/Datasets/reds.html
and extract them into the manual directory, which then holds (official layout):

  val_blur_bicubic/val/val_blur_bicubic/X4/000/00000000.png        (config val)
  val_sharp/val/val_sharp/000/00000000.png                          (config val)
  train_blur_bicubic/train/train_blur_bicubic/X4/000/00000000.png  (config train)
  train_sharp/train/train_sharp/000/00000000.png                    (config train)
  train_sharp_bicubic/train/train_sharp_bicubic/X4/000/00000000.png (config train)

Folders extracted one level shallower (val_sharp/000/..., val_blur_bicubic/X4/000/...)
are accepted too. Config 'val' needs only the two val folders, 'train' only the three
train folders.
"""


class Reds(tfds.core.GeneratorBasedBuilder):
  """REDS blurry LR / sharp HR (/ sharp LR) frames for joint deblurring and 4x SR."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release: configs val (validation, val300) and train.',
                   '2.0.0': 'train: the images as PNG tiles, for cheap training crops.'}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name='val', version='1.0.0',
                              description='validation and val300: blur LR, sharp HR.'),
      tfds.core.BuilderConfig(name='train', version='2.0.0',
                              description='train: blur LR, sharp HR, sharp LR, as PNG tiles.'),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    if self.builder_config.name == 'train':
      tiled = lambda: tfds.features.Tensor(shape=(None,), dtype=np.object_)  # PNG bytes
      features = {'id': tfds.features.Text(), 'lr_shape': tfds.features.Tensor(shape=(2,), dtype=np.int32),
                  **{key: tiled() for key in IMAGE_KEYS}}
    else:
      image = lambda: tfds.features.Image(shape=(None, None, 3), encoding_format='png')
      features = {'id': tfds.features.Text(), 'blur_lr': image(), 'sharp_hr': image()}
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage='https://seungjunnah.github.io/Datasets/reds.html',
        disable_shuffling=True)  # stored in id order, as evaluation wants; shuffle to train

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
    root = dl_manager.manual_dir
    if self.builder_config.name == 'train':
      frames = {'train': reds.list_frames(root, 'train', with_sharp_lr=True)}
    else:
      frames = {'validation': reds.list_frames(root, 'val'),
                'val300': reds.list_frames(root, 'val', subset='val300')}
    for split, listed in frames.items():
      if len(listed) != _EXPECTED[split]:
        logging.warning('REDS %s: %d frames under %s, expected %d', split, len(listed), root,
                        _EXPECTED[split])
    return {split: self._generate_examples(listed) for split, listed in frames.items()}

  def _generate_examples(self, frames: list[reds.Frame]) -> Iterator[tuple[str, dict]]:
    if self.builder_config.name == 'train':
      yield from _in_parallel(_tiled_example, frames)
      return
    for frame in frames:
      example = {'id': frame.id, 'blur_lr': os.fspath(frame.blur_lr),
                 'sharp_hr': os.fspath(frame.sharp_hr)}
      if frame.sharp_lr is not None:
        example['sharp_lr'] = os.fspath(frame.sharp_lr)
      yield frame.id, example


def _read(path: os.PathLike) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image.convert('RGB'))


def _tiled_example(frame: reds.Frame) -> tuple[str, dict]:
  """A reds/train example: the frame's three images as tiles on one grid."""
  images = {key: _read(getattr(frame, key)) for key in IMAGE_KEYS}
  lr_shape = images['blur_lr'].shape[:2]
  for key, image in images.items():
    factor = _factor(key)
    if image.shape[:2] != (factor * lr_shape[0], factor * lr_shape[1]):
      raise reds.REDSError(f'{frame.id}: {key} is {image.shape[0]}×{image.shape[1]}, expected '
                           f'{factor}× the blur LR\'s {lr_shape[0]}×{lr_shape[1]}: {getattr(frame, key)}')
  example = {key: np.array(tiles.encode(image, _tile(key)), dtype=object)
             for key, image in images.items()}
  return frame.id, {'id': frame.id, 'lr_shape': np.array(lr_shape, np.int32), **example}


def _factor(key: str) -> int:
  """An image's size in LR pixels: REDS's scale for the HR frame, else 1."""
  return reds.SCALE if key == 'sharp_hr' else 1


def _tile(key: str) -> int:
  return LR_TILE * _factor(key)


def _decode(record: dict, key: str, lr_shape: tuple[int, int], top: int = 0, left: int = 0,
            size: int | None = None):
  """Image ``key`` of a record, whole or its size² (LR pixels) crop at (top, left), in its own pixels."""
  f, (h, w) = _factor(key), lr_shape
  if size is None:
    return tiles.decode(record[key], (f * h, f * w), _tile(key))
  return tiles.decode(record[key], (f * h, f * w), _tile(key), f * top, f * left, f * size, f * size)


def _in_parallel(fn, items: Sequence, window: int = 64) -> Iterator:
  """``map(fn, items)`` in order, on all cores (Pillow codes without the GIL), at most ``window`` ahead."""
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    items = iter(items)
    queue = collections.deque(pool.submit(fn, item) for item in itertools.islice(items, window))
    while queue:
      result = queue.popleft().result()
      queue.extend(pool.submit(fn, item) for item in itertools.islice(items, 1))
      yield result


class TrainSource:
  """REDS train (``reds/train``) for ``jdsr.data.pipeline``: random access, crops from tiles.

  ``load_crop`` reads one record and decodes only the tiles of the images the
  phase uses that the crop covers; ``load`` decodes whole frames. Images are
  uint8.
  """

  dtype = np.uint8

  def __init__(self, data_source: Sequence[dict]):
    self.records = data_source

  def __len__(self) -> int:
    return len(self.records)

  def _record(self, index: int) -> tuple[dict, str, tuple[int, int]]:
    record = self.records[index]
    name = record['id']
    return record, name.decode() if isinstance(name, bytes) else str(name), tuple(
        int(n) for n in record['lr_shape'])

  def load(self, index: int, epoch: int) -> dict:
    del epoch
    record, name, lr_shape = self._record(index)
    return {'id': name, **{key: _decode(record, key, lr_shape) for key in IMAGE_KEYS}}

  def load_crop(self, index: int, epoch: int, draws: tuple[int, int], size: int,
                keys: Iterable[str], scale: int) -> dict:
    del epoch
    record, name, lr_shape = self._record(index)
    if scale != reds.SCALE:
      raise ValueError(f'REDS is a ×{reds.SCALE} dataset; config.model.scale is {scale}')
    top, left = pipeline.crop_origin(draws, lr_shape, size, name)
    return {'id': name, **{key: _decode(record, key, lr_shape, top, left, size) for key in keys}}


def _builder(split: str, data_dir: reds.PathLike, file_format: str | None = None) -> Reds:
  config = next((name for name, splits in SPLITS.items() if split in splits), None)
  if config is None:
    known = tuple(s for splits in SPLITS.values() for s in splits)
    raise reds.REDSError(f'split must be one of {known}, got {split!r}')
  return Reds(config=config, data_dir=os.fspath(data_dir), file_format=file_format)


def _prepare(builder: Reds, manual_dir: reds.PathLike) -> None:
  """Prepares the builder's dataset from ``manual_dir`` unless it is prepared already.

  Preparing writes the examples with TensorFlow (``pip install '.[reds]'``);
  reading a prepared dataset does not need it.
  """
  if builder.is_prepared():
    return
  if importlib.util.find_spec('tensorflow') is None:
    raise reds.REDSError(f'{builder.data_dir}: REDS is not prepared there yet, and preparing it '
                         f"(once) needs TensorFlow: {errors.install_hint('reds')}")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))


def train_source(manual_dir: reds.PathLike, data_dir: reds.PathLike) -> TrainSource:
  """REDS train as a random-access ``TrainSource``, for training.

  Prepares ``reds/train`` from ``manual_dir`` first if needed, in the
  ArrayRecord format, which allows random access (and so resuming a run
  without reading what it skips): it goes to ``data_dir/array_record``.
  """
  builder = _builder('train', os.path.join(data_dir, 'array_record'), file_format='array_record')
  _prepare(builder, manual_dir)
  return TrainSource(builder.as_data_source(split='train'))


def load(split: str, manual_dir: reds.PathLike, data_dir: reds.PathLike):
  """The REDS ``split`` ('validation' or 'val300') as a dict ``tf.data.Dataset``, in id order.

  Prepares ``reds/val`` into ``data_dir`` from ``manual_dir`` first if needed;
  once prepared, ``manual_dir`` is not read. (The training split is read
  with ``train_source``.)
  """
  if split == 'train':
    raise reds.REDSError("split 'train' is read with train_source (random access, tiles), not load")
  builder = _builder(split, data_dir)
  _prepare(builder, manual_dir)
  return builder.as_dataset(split=split, shuffle_files=False)
