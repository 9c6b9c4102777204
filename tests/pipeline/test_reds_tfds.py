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


@pytest.mark.parametrize('config, sizes, version', [
    ('val', {'validation': 6, 'val300': 4}, '1.0.0'),
    ('train', {'train': 6}, '2.0.0'),
])
def test_prepares_splits_with_sizes(manual_dir, tmp_path, config, sizes, version):
  builder = _prepare(config, manual_dir, tmp_path / 'data')
  assert {name: info.num_examples for name, info in builder.info.splits.items()} == sizes
  assert str(builder.info.version) == version


def test_examples_are_the_png_files(manual_dir, tmp_path):
  data_dir = tmp_path / 'data'
  expected = {f.id: f for f in reds.list_frames(manual_dir, 'val')}
  examples = list(tfds.as_numpy(reds_tfds.load('validation', manual_dir, data_dir)))
  assert [e['id'].decode() for e in examples] == sorted(expected)
  assert examples[0]['id'] == b'000_00000009'
  for example in examples:
    frame = expected[example['id'].decode()]
    assert example['blur_lr'].shape == (*LR_SIZE, 3) and example['blur_lr'].dtype == np.uint8
    assert example['sharp_hr'].shape == (LR_SIZE[0] * 4, LR_SIZE[1] * 4, 3)
    np.testing.assert_array_equal(example['blur_lr'], _pixels(frame.blur_lr))
    np.testing.assert_array_equal(example['sharp_hr'], _pixels(frame.sharp_hr))
  with pytest.raises(reds.REDSError, match='train_source'):
    reds_tfds.load('train', manual_dir, data_dir)

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


def test_train_crops_decode_only_what_they_use(manual_dir, tmp_path, monkeypatch):
  """load_crop decodes only the phase's images and the tiles the crop covers: others may be garbage."""
  monkeypatch.setattr(reds_tfds, 'LR_TILE', 4)  # 2×3 tiles of the 8×12 LR frames
  source = reds_tfds.train_source(manual_dir, tmp_path / 'data')
  full = source.load(1, epoch=0)
  record = dict(source.records[1])
  assert len(record['sharp_hr']) == len(record['blur_lr']) == 6
  record['sharp_hr'] = np.array([b'not a png'] * 6, dtype=object)
  record['blur_lr'] = record['blur_lr'].copy()
  record['blur_lr'][0] = b'not a png'  # rows 0-3, columns 0-3: not under the crop
  broken = reds_tfds.TrainSource([record] * 2)
  crop = broken.load_crop(1, 0, (3, 5), 4, ('blur_lr', 'sharp_lr'), scale=4)  # phase 1: no HR
  assert set(crop) == {'id', 'blur_lr', 'sharp_lr'}
  np.testing.assert_array_equal(crop['blur_lr'], full['blur_lr'][3:7, 5:9])  # 3 % 5, 5 % 9
  np.testing.assert_array_equal(crop['sharp_lr'], full['sharp_lr'][3:7, 5:9])
  with pytest.raises(Exception):
    broken.load_crop(1, 0, (3, 5), 4, ('blur_lr', 'sharp_hr'), scale=4)
  with pytest.raises(ValueError, match='000_00000019: the LR image .* smaller than the 16x16 crop'):
    source.load_crop(1, 0, (0, 0), 16, ('blur_lr',), scale=4)


def test_tiled_batches_equal_full_frame_batches(manual_dir, tmp_path, monkeypatch):
  """The tiled source and crop_and_augment on whole frames give the very same batches."""
  from jdsr.data import pipeline

  monkeypatch.setattr(reds_tfds, 'LR_TILE', 4)
  tiled = reds_tfds.train_source(manual_dir, tmp_path / 'data')
  whole = pipeline.SequenceSource([tiled.load(i, 0) for i in range(len(tiled))])
  for keys in (('blur_lr', 'sharp_lr'), ('blur_lr', 'sharp_hr'), pipeline.IMAGE_KEYS):
    run = lambda source: list(pipeline.as_numpy(pipeline.train_batches(
        source, batch_size=2, seed=3, start=2, lr_size=4, keys=keys, epochs=2)))
    got, want = run(tiled), run(whole)
    assert len(got) == len(want) == 5  # (2·6 - 2) // 2
    for a, b in zip(got, want):
      assert set(a) == set(keys) | {'id'}
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])
