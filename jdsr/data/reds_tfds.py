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
  train_sharp and train_sharp_bicubic. Features 'id', 'blur_lr', 'sharp_hr'
  and 'sharp_lr' (the phase-1 target).

'id' is the frame's 'SSS_FFFFFFFF' (also the example key); the images are
uint8 H×W×3, stored as the PNG bytes of the files, not re-encoded. Examples
are stored and read back in id order (``disable_shuffling``). A folder
missing for the config being prepared raises ``reds.REDSError`` naming it,
before anything is written; frames are paired by ``reds.list_frames``.
"""

from __future__ import annotations

import logging
import os
from typing import Iterator

import tensorflow as tf
import tensorflow_datasets as tfds

from jdsr.data import reds

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
  RELEASE_NOTES = {'1.0.0': 'Initial release: configs val (validation, val300) and train.'}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name='val', description='validation and val300: blur LR, sharp HR.'),
      tfds.core.BuilderConfig(name='train', description='train: blur LR, sharp HR, sharp LR.'),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    image = lambda: tfds.features.Image(shape=(None, None, 3), encoding_format='png')
    features = {'id': tfds.features.Text(), 'blur_lr': image(), 'sharp_hr': image()}
    if self.builder_config.name == 'train':
      features['sharp_lr'] = image()
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
    for frame in frames:
      example = {'id': frame.id, 'blur_lr': os.fspath(frame.blur_lr),
                 'sharp_hr': os.fspath(frame.sharp_hr)}
      if frame.sharp_lr is not None:
        example['sharp_lr'] = os.fspath(frame.sharp_lr)
      yield frame.id, example


def _builder(split: str, data_dir: reds.PathLike, file_format: str | None = None) -> Reds:
  config = next((name for name, splits in SPLITS.items() if split in splits), None)
  if config is None:
    known = tuple(s for splits in SPLITS.values() for s in splits)
    raise reds.REDSError(f'split must be one of {known}, got {split!r}')
  return Reds(config=config, data_dir=os.fspath(data_dir), file_format=file_format)


def _prepare(builder: Reds, manual_dir: reds.PathLike) -> None:
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))


def train_source(manual_dir: reds.PathLike, data_dir: reds.PathLike):
  """REDS train as a random-access ``jdsr.data.pipeline.SequenceSource``, for training.

  Prepares ``reds/train`` from ``manual_dir`` first if needed, in the
  ArrayRecord format, which allows random access (and so resuming a run
  without reading what it skips) but not ``as_dataset``: it goes to
  ``data_dir/array_record``, beside the TFRecord copy ``load`` uses.
  """
  from jdsr.data import pipeline

  builder = _builder('train', os.path.join(data_dir, 'array_record'), file_format='array_record')
  _prepare(builder, manual_dir)
  return pipeline.SequenceSource(builder.as_data_source(split='train'))


def load(split: str, manual_dir: reds.PathLike, data_dir: reds.PathLike) -> tf.data.Dataset:
  """The REDS ``split`` ('train', 'validation' or 'val300') as a dict dataset, in id order.

  Prepares its config (``reds/train`` or ``reds/val``) into ``data_dir`` from
  ``manual_dir`` first if needed; once prepared, ``manual_dir`` is not read.
  """
  builder = _builder(split, data_dir)
  _prepare(builder, manual_dir)
  return builder.as_dataset(split=split, shuffle_files=False)
