"""The REDS TFDS builder, prepared from fake trees written by write_fake_reds."""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jdsr.data import reds
from jdsr.data import reds_tfds

FRAMES = (9, 19, 25)
LR_SIZE = (8, 12)


@pytest.fixture
def manual_dir(tmp_path: pathlib.Path) -> pathlib.Path:
  root = tmp_path / 'manual'
  reds.write_fake_reds(root, 'train', sequences=2, frames=FRAMES, lr_size=LR_SIZE, sharp_lr=True)
  reds.write_fake_reds(root, 'val', sequences=2, frames=FRAMES, lr_size=LR_SIZE, seed=1)
  return root


def _prepare(config: str, manual_dir: pathlib.Path, data_dir: pathlib.Path) -> reds_tfds.Reds:
  builder = reds_tfds.Reds(config=config, data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _pixels(path: pathlib.Path) -> np.ndarray:
  return np.asarray(Image.open(path).convert('RGB'))


@pytest.mark.parametrize('config, sizes', [
    ('val', {'validation': 6, 'val300': 4}),
    ('train', {'train': 6}),
])
def test_prepares_splits_with_sizes(manual_dir, tmp_path, config, sizes):
  builder = _prepare(config, manual_dir, tmp_path / 'data')
  assert {name: info.num_examples for name, info in builder.info.splits.items()} == sizes
  assert str(builder.info.version) == '1.0.0'


def test_examples_are_the_png_files(manual_dir, tmp_path):
  data_dir = tmp_path / 'data'
  expected = {f.id: f for f in reds.list_frames(manual_dir, 'train', with_sharp_lr=True)}
  examples = list(tfds.as_numpy(reds_tfds.load('train', manual_dir, data_dir)))
  assert [e['id'].decode() for e in examples] == sorted(expected)
  assert examples[0]['id'] == b'000_00000009'
  for example in examples:
    frame = expected[example['id'].decode()]
    assert example['blur_lr'].shape == (*LR_SIZE, 3) and example['blur_lr'].dtype == np.uint8
    assert example['sharp_hr'].shape == (LR_SIZE[0] * 4, LR_SIZE[1] * 4, 3)
    np.testing.assert_array_equal(example['blur_lr'], _pixels(frame.blur_lr))
    np.testing.assert_array_equal(example['sharp_hr'], _pixels(frame.sharp_hr))
    np.testing.assert_array_equal(example['sharp_lr'], _pixels(frame.sharp_lr))

  val300 = list(tfds.as_numpy(reds_tfds.load('val300', manual_dir, data_dir)))
  assert [e['id'].decode() for e in val300] == [
      '000_00000009', '000_00000019', '001_00000009', '001_00000019']
  assert set(val300[0]) == {'id', 'blur_lr', 'sharp_hr'}  # reds/val: no sharp LR feature
  frame = reds.list_frames(manual_dir, 'val', subset='val300')[0]
  np.testing.assert_array_equal(val300[0]['sharp_hr'], _pixels(frame.sharp_hr))


def test_preparing_twice_changes_nothing(manual_dir, tmp_path):
  data_dir = tmp_path / 'data'
  builder = _prepare('val', manual_dir, data_dir)
  files = sorted(pathlib.Path(builder.data_dir).iterdir())
  stamps = [f.stat().st_mtime_ns for f in files]
  shutil.rmtree(manual_dir)  # a second prepare must not even read the manual dir
  again = _prepare('val', manual_dir, data_dir)
  assert sorted(pathlib.Path(again.data_dir).iterdir()) == files
  assert [f.stat().st_mtime_ns for f in files] == stamps
  assert again.info.splits['validation'].num_examples == 6
  assert len(list(reds_tfds.load('validation', manual_dir, data_dir))) == 6


@pytest.mark.parametrize('config, folder', [
    ('val', 'val_sharp'),
    ('train', 'train_sharp_bicubic'),
])
def test_missing_folder_is_named(manual_dir, tmp_path, config, folder):
  shutil.rmtree(manual_dir / folder)
  data_dir = tmp_path / 'data'
  with pytest.raises(reds.REDSError, match=f'REDS {folder} not found'):
    _prepare(config, manual_dir, data_dir)
  assert not list(data_dir.glob('reds/*/1.0.0/*.tfrecord*'))  # nothing half-written


def test_load_rejects_unknown_split(manual_dir, tmp_path):
  with pytest.raises(reds.REDSError, match='split must be one of'):
    reds_tfds.load('test', manual_dir, tmp_path / 'data')


def test_train_source_is_random_access(manual_dir, tmp_path):
  source = reds_tfds.train_source(manual_dir, tmp_path / 'data')
  frames = reds.list_frames(manual_dir, 'train', with_sharp_lr=True)
  assert len(source) == len(frames)
  for index in (len(frames) - 1, 0, 3):
    example, frame = source.load(index, epoch=0), frames[index]
    assert (example['id'].decode() if isinstance(example['id'], bytes) else example['id']) == frame.id
    for key in ('blur_lr', 'sharp_lr', 'sharp_hr'):
      np.testing.assert_array_equal(example[key], _pixels(getattr(frame, key)))
