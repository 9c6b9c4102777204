"""Finding, pairing and cropping REDS frames, on fake trees written by write_fake_reds."""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from jdsr.data import reds

VAL_BLUR = pathlib.Path('val_blur_bicubic/val/val_blur_bicubic/X4')
VAL_SHARP = pathlib.Path('val_sharp/val/val_sharp')
TRAIN_SHARP_LR = pathlib.Path('train_sharp_bicubic/train/train_sharp_bicubic/X4')


def test_lists_fake_tree_sorted_with_paths(tmp_path):
  root = reds.write_fake_reds(tmp_path, 'val', sequences=2, frames=(19, 9), lr_size=(16, 24))
  frames = reds.list_frames(root)
  assert [f.id for f in frames] == ['000_00000009', '000_00000019', '001_00000009', '001_00000019']
  frame = frames[1]
  assert frame == reds.Frame('000_00000019', tmp_path / VAL_BLUR / '000/00000019.png',
                             tmp_path / VAL_SHARP / '000/00000019.png', None)
  assert Image.open(frame.blur_lr).size == (24, 16)  # PIL sizes are (width, height)
  assert Image.open(frame.sharp_hr).size == (96, 64)
  assert np.asarray(Image.open(frame.blur_lr)).shape == (16, 24, 3)


def test_fake_tree_depends_on_seed(tmp_path):
  a = reds.write_fake_reds(tmp_path / 'a', seed=0)
  b = reds.write_fake_reds(tmp_path / 'b', seed=0)
  c = reds.write_fake_reds(tmp_path / 'c', seed=1)
  path = VAL_BLUR / '001/00000019.png'
  assert (a / path).read_bytes() == (b / path).read_bytes()
  assert (a / path).read_bytes() != (c / path).read_bytes()


def test_val300_keeps_frames_9_19(tmp_path):
  reds.write_fake_reds(tmp_path, 'val', sequences=2, frames=range(20))
  assert len(reds.list_frames(tmp_path)) == 40
  frames = reds.list_frames(tmp_path, subset='val300')
  assert [f.id for f in frames] == ['000_00000009', '000_00000019', '001_00000009', '001_00000019']
  assert frames[0].sharp_hr == tmp_path / VAL_SHARP / '000/00000009.png'


def test_val300_needs_val_and_its_frames(tmp_path):
  reds.write_fake_reds(tmp_path, 'train', frames=(9,))
  with pytest.raises(reds.REDSError, match="'val300'.*'train'"):
    reds.list_frames(tmp_path, 'train', subset='val300')
  reds.write_fake_reds(tmp_path, 'val', frames=(0, 1, 8))
  with pytest.raises(reds.REDSError, match='no val300 frames'):
    reds.list_frames(tmp_path, 'val', subset='val300')


def test_accepts_shallow_layout(tmp_path):
  deep = reds.write_fake_reds(tmp_path / 'deep', 'val')
  shallow = tmp_path / 'shallow'
  shutil.copytree(deep / VAL_BLUR, shallow / 'val_blur_bicubic/X4')
  shutil.copytree(deep / VAL_SHARP, shallow / 'val_sharp')
  assert reds.find_dir(shallow, 'blur_bicubic', 'val') == shallow / 'val_blur_bicubic/X4'
  assert reds.find_dir(shallow, 'sharp', 'val') == shallow / 'val_sharp'
  frames = reds.list_frames(shallow)
  assert [f.id for f in frames] == [f.id for f in reds.list_frames(deep)]
  assert frames[0].blur_lr == shallow / 'val_blur_bicubic/X4/000/00000009.png'
  assert frames[0].sharp_hr == shallow / 'val_sharp/000/00000009.png'


def test_sharp_lr_for_train(tmp_path):
  reds.write_fake_reds(tmp_path, 'train', sequences=1, frames=(3,), lr_size=(8, 12), sharp_lr=True)
  assert reds.list_frames(tmp_path, 'train')[0].sharp_lr is None
  (frame,) = reds.list_frames(tmp_path, 'train', with_sharp_lr=True)
  assert frame.id == '000_00000003'
  assert frame.sharp_lr == tmp_path / TRAIN_SHARP_LR / '000/00000003.png'
  assert Image.open(frame.sharp_lr).size == (12, 8)
  assert Image.open(frame.sharp_hr).size == (48, 32)


def test_val_sharp_lr_is_paired_when_downloaded(tmp_path):
  """REDS has val_sharp_bicubic too (on its download page); it is optional."""
  reds.write_fake_reds(tmp_path / 'without', 'val')
  assert not reds.has_sharp_lr(tmp_path / 'without', 'val')
  with pytest.raises(reds.REDSError, match='val_sharp_bicubic not found'):
    reds.list_frames(tmp_path / 'without', 'val', with_sharp_lr=True)
  reds.write_fake_reds(tmp_path / 'with', 'val', sharp_lr=True)
  assert reds.has_sharp_lr(tmp_path / 'with', 'val')
  frames = reds.list_frames(tmp_path / 'with', 'val', subset='val300', with_sharp_lr=True)
  assert frames[0].sharp_lr == (tmp_path / 'with' / 'val_sharp_bicubic/val/val_sharp_bicubic/X4'
                                / '000/00000009.png')
  assert Image.open(frames[0].sharp_lr).size == Image.open(frames[0].blur_lr).size


def test_missing_sharp_lr_is_named(tmp_path):
  reds.write_fake_reds(tmp_path, 'train', sharp_lr=True)
  (tmp_path / TRAIN_SHARP_LR / '001/00000009.png').unlink()
  expected = tmp_path / TRAIN_SHARP_LR / '001/00000009.png'
  with pytest.raises(reds.REDSError, match='no sharp LR for 001_00000009') as error:
    reds.list_frames(tmp_path, 'train', with_sharp_lr=True)
  assert str(expected) in str(error.value)
  assert len(reds.list_frames(tmp_path, 'train')) == 4  # without the sharp LR nothing is missing


def test_missing_counterparts_are_named(tmp_path):
  reds.write_fake_reds(tmp_path, 'val', sequences=4)
  (tmp_path / VAL_SHARP / '003/00000019.png').unlink()
  (tmp_path / VAL_BLUR / '001/00000009.png').unlink()
  with pytest.raises(reds.REDSError) as error:
    reds.list_frames(tmp_path)
  message = str(error.value)
  assert f'no sharp HR for 003_00000019: expected {tmp_path / VAL_SHARP / "003/00000019.png"}' in message
  assert f'no blur LR for 001_00000009: expected {tmp_path / VAL_BLUR / "001/00000009.png"}' in message
  assert '000_00000009' not in message


def test_many_missing_are_capped(tmp_path):
  reds.write_fake_reds(tmp_path, 'val', sequences=4, frames=range(5))
  for seq in ('001', '002', '003'):
    shutil.rmtree(tmp_path / VAL_SHARP / seq)
  with pytest.raises(reds.REDSError) as error:
    reds.list_frames(tmp_path)
  message = str(error.value)
  assert message.startswith('15 unmatched frames')
  assert message.count('no sharp HR for') == reds.MAX_LISTED == 10
  assert message.endswith('and 5 more')
  assert '\n' not in message  # the commands print an error's first line: it names the frames


def test_one_unmatched_frame_is_named_in_the_one_line(tmp_path):
  from jdsr.errors import one_line
  reds.write_fake_reds(tmp_path, 'val', sequences=1, frames=range(2))
  (tmp_path / VAL_SHARP / '000' / '00000001.png').unlink()
  with pytest.raises(reds.REDSError) as error:
    reds.list_frames(tmp_path)
  assert one_line(error.value).startswith('1 unmatched frame in ')
  assert one_line(error.value).endswith(': no sharp HR for 000_00000001: expected '
                                        f'{tmp_path / VAL_SHARP / "000/00000001.png"}')


def test_missing_root_dir_lists_tried_paths(tmp_path):
  with pytest.raises(reds.REDSError, match='val_blur_bicubic not found') as error:
    reds.list_frames(tmp_path)
  lines = [line.strip() for line in str(error.value).splitlines()]
  assert str(tmp_path / VAL_BLUR) in lines
  assert str(tmp_path / 'val_blur_bicubic/X4') in lines
  with pytest.raises(reds.REDSError) as error:
    reds.find_dir(tmp_path, 'sharp', 'train')
  lines = [line.strip() for line in str(error.value).splitlines()]
  assert str(tmp_path / 'train_sharp/train/train_sharp') in lines
  assert str(tmp_path / 'train_sharp') in lines


def test_missing_sharp_dir_is_reported(tmp_path):
  reds.write_fake_reds(tmp_path, 'val')
  shutil.rmtree(tmp_path / 'val_sharp')
  with pytest.raises(reds.REDSError, match='val_sharp not found'):
    reds.list_frames(tmp_path)


def test_empty_folder(tmp_path):
  (tmp_path / VAL_BLUR / '000').mkdir(parents=True)
  (tmp_path / VAL_SHARP).mkdir(parents=True)
  with pytest.raises(reds.REDSError, match='no frames') as error:
    reds.list_frames(tmp_path)
  assert str(tmp_path / VAL_BLUR) in str(error.value)


def test_strict_count(tmp_path, monkeypatch):
  reds.write_fake_reds(tmp_path, 'val', sequences=2, frames=range(20))
  assert len(reds.list_frames(tmp_path)) == 40  # not strict by default
  with pytest.raises(reds.REDSError, match='found 40 REDS val frames.*expected 3000'):
    reds.list_frames(tmp_path, strict_count=True)
  with pytest.raises(reds.REDSError, match='found 4 REDS val300 frames.*expected 300'):
    reds.list_frames(tmp_path, subset='val300', strict_count=True)
  monkeypatch.setitem(reds.EXPECTED, 'val', 40)
  assert len(reds.list_frames(tmp_path, strict_count=True)) == 40


def test_bad_arguments(tmp_path):
  with pytest.raises(reds.REDSError, match='split'):
    reds.list_frames(tmp_path, 'test')
  with pytest.raises(reds.REDSError, match='subset'):
    reds.list_frames(tmp_path, subset='val3000')
  with pytest.raises(reds.REDSError, match='kind'):
    reds.find_dir(tmp_path, 'blur', 'val')


def test_crop_like_reference():
  lr = np.broadcast_to(np.arange(180)[:, None, None], (180, 320, 3))
  hr = np.broadcast_to(np.arange(720)[:, None, None], (720, 1280, 3))
  lr_crop, hr_crop = reds.crop_like_reference(lr, hr)
  assert lr_crop.shape == (176, 320, 3) and hr_crop.shape == (704, 1280, 3)
  assert lr_crop[0, 0, 0] == 2 and lr_crop[-1, 0, 0] == 177
  assert hr_crop[0, 0, 0] == 8 and hr_crop[-1, 0, 0] == 711
  np.testing.assert_array_equal(hr_crop[::4, 0, 0], 4 * lr_crop[:, 0, 0])  # the same region


@pytest.mark.parametrize('lr_shape, hr_shape', [
    ((176, 320, 3), (720, 1280, 3)),
    ((180, 320, 3), (704, 1280, 3)),
    ((320, 180, 3), (1280, 720, 3)),
    ((180, 320), (720, 1280)),
])
def test_crop_like_reference_rejects_other_sizes(lr_shape, hr_shape):
  with pytest.raises(reds.REDSError, match='must be'):
    reds.crop_like_reference(np.zeros(lr_shape, np.uint8), np.zeros(hr_shape, np.uint8))
