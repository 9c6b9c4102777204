"""Shared utilities: pixel values and bicubic resizing (jdsr.io.pixels), atomic writes (jdsr.io.files)."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from jdsr.io import files, pixels


def _old_quantise(x: np.ndarray, bits: int) -> np.ndarray:
  """The formula of the former metrics.to_uint8 and imageio._quantise."""
  scaled = np.clip(x.astype(np.float32), np.float32(0), np.float32(1)) * np.float32(2 ** bits - 1)
  return np.rint(scaled).astype(np.uint8 if bits == 8 else np.uint16)


def _pillow_bicubic(channel: np.ndarray, height: int, width: int) -> np.ndarray:
  """One float channel resized by Pillow in mode 'F', as the former resizers called it."""
  image = Image.fromarray(np.ascontiguousarray(channel, np.float32))
  assert image.mode == 'F'
  return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC))


# to_float and quantize


@pytest.mark.parametrize('bits, dtype', [(8, np.uint8), (16, np.uint16)])
def test_to_float_and_quantize_round_trip(bits, dtype):
  top = 2 ** bits - 1
  every = np.arange(top + 1, dtype=dtype)
  values = pixels.to_float(every)
  assert values.dtype == np.float32
  np.testing.assert_array_equal(values, every.astype(np.float32) / np.float32(top))
  assert values[0] == 0 and values[-1] == 1
  back = pixels.quantize(values, bits)
  assert back.dtype == dtype
  np.testing.assert_array_equal(back, every)


def test_to_float_of_floats_and_other_types():
  np.testing.assert_array_equal(pixels.to_float(np.array([[-0.5, 0.25, 1.5]])), [[-0.5, 0.25, 1.5]])
  assert pixels.to_float(np.zeros(3, np.float64)).dtype == np.float32
  assert pixels.to_float([0.5]).dtype == np.float32
  big_endian = np.array([0, 257, 65535], '>u2')  # Pillow's mode 'I;16B'
  np.testing.assert_array_equal(pixels.to_float(big_endian), np.float32([0, 257, 65535]) / 65535)
  for dtype in (np.int32, np.int8, bool):
    with pytest.raises(TypeError, match='uint8, uint16 or float'):
      pixels.to_float(np.zeros(3, dtype))


@pytest.mark.parametrize('bits', [8, 16])
def test_quantize_rounds_ties_to_even(bits):
  top = 2 ** bits - 1
  halves = np.arange(top, dtype=np.float64) + 0.5
  x = (halves / top).astype(np.float32)
  exact = x * np.float32(top) == halves  # the float32 product is exactly the tie
  assert exact.sum() > top // 4
  expected = np.where(np.floor(halves) % 2 == 0, np.floor(halves), np.ceil(halves))
  np.testing.assert_array_equal(pixels.quantize(x[exact], bits), expected[exact])
  assert pixels.quantize(np.float32(0.5), bits) == (top + 1) // 2  # 127.5 → 128, 32767.5 → 32768


@pytest.mark.parametrize('bits', [8, 16])
def test_quantize_clamps_and_matches_the_former_formula_bitwise(bits):
  x = np.random.default_rng(0).uniform(-0.5, 1.5, (64, 64, 3))
  np.testing.assert_array_equal(pixels.quantize(x, bits), _old_quantise(x, bits))
  np.testing.assert_array_equal(pixels.quantize(x.astype(np.float32), bits), _old_quantise(x, bits))
  top = 2 ** bits - 1
  np.testing.assert_array_equal(pixels.quantize(np.array([-1.0, 0.0, 1.0, 7.0]), bits),
                                [0, 0, top, top])


def test_quantize_passes_its_own_type_and_rejects_others():
  u8, u16 = np.arange(256, dtype=np.uint8), np.arange(0, 65536, 7, dtype=np.uint16)
  assert pixels.quantize(u8) is u8
  assert pixels.quantize(u16, bits=16) is u16
  with pytest.raises(TypeError, match='float in \\[0, 1\\] or uint8, got int32'):
    pixels.quantize(np.zeros(3, np.int32))
  with pytest.raises(TypeError, match='uint16, got uint8'):
    pixels.quantize(u8, bits=16)
  with pytest.raises(ValueError, match='bits'):
    pixels.quantize(np.zeros(3), bits=12)


# resize_bicubic


@pytest.mark.parametrize('size', [(28, 36), (7, 9), (3, 20), (7, 11)])
def test_resize_bicubic_of_gray_is_pillow(size):
  gray = np.random.default_rng(1).uniform(-0.2, 1.2, (7, 9)).astype(np.float32)
  out = pixels.resize_bicubic(gray, size)
  assert out.shape == size and out.dtype == np.float32
  np.testing.assert_array_equal(out, _pillow_bicubic(gray, *size))
  out[0, 0] = 5  # a writable array of its own


@pytest.mark.parametrize('size', [(48, 68), (3, 4), (5, 13)])
def test_resize_bicubic_of_colour_is_pillow_per_channel(size):
  rgb = np.random.default_rng(2).uniform(size=(12, 17, 3))  # float64: cast to float32 first
  out = pixels.resize_bicubic(rgb, size)
  assert out.shape == size + (3,) and out.dtype == np.float32
  for c in range(3):
    np.testing.assert_array_equal(out[..., c], _pillow_bicubic(rgb[..., c], *size))
  np.testing.assert_array_equal(pixels.resize_bicubic(rgb[:, :, ::-1], size), out[..., ::-1])


def test_resize_bicubic_is_not_clipped():
  checker = (np.indices((8, 10)).sum(0) % 2).astype(np.float32)  # 0/1 edges: bicubic overshoots
  out = pixels.resize_bicubic(checker, (32, 40))
  assert out.min() < 0 and out.max() > 1


def test_resize_bicubic_rejects_bad_input():
  with pytest.raises(TypeError, match='float'):
    pixels.resize_bicubic(np.zeros((4, 4), np.uint8), (8, 8))
  with pytest.raises(ValueError, match='shape'):
    pixels.resize_bicubic(np.zeros((2, 4, 4, 3)), (8, 8))
  with pytest.raises(ValueError, match='shape'):
    pixels.resize_bicubic(np.zeros((0, 4)), (8, 8))
  with pytest.raises(ValueError, match='size'):
    pixels.resize_bicubic(np.zeros((4, 4)), (0, 8))


# upscale (formerly figures.bicubic_upscale and restore.upscale_bicubic)


def test_upscale_shape_and_range():
  checker = (np.indices((8, 10)).sum(0) % 2).astype(np.float32)  # 0/1 edges: bicubic overshoots
  lr = np.stack([checker, 1 - checker, np.full_like(checker, 0.5)], axis=-1)
  up = pixels.upscale(lr)
  assert up.shape == (32, 40, 3) and up.dtype == np.float32
  assert up.min() == 0.0 and up.max() == 1.0  # reached, and clipped there
  assert 0 < np.mean((up > 0) & (up < 1))  # interpolated, not nearest-neighbour
  assert pixels.upscale(lr, scale=2).shape == (16, 20, 3)
  np.testing.assert_array_equal(up, np.clip(pixels.resize_bicubic(lr, (32, 40)), 0, 1))
  np.testing.assert_array_equal(pixels.upscale(checker), up[..., 0])  # one channel, H×W
  with pytest.raises(ValueError, match='scale'):
    pixels.upscale(lr, scale=0)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_upscale_matches_pillow_8bit(scale):
  # Mid-range values, so that no overshoot is clipped: Pillow's 8-bit resize clips and rounds
  # after each of its two passes, which float mode does not.
  u8 = np.random.default_rng(0).integers(64, 193, (12, 17, 3), dtype=np.uint8)
  theirs = np.asarray(Image.fromarray(u8).resize((17 * scale, 12 * scale),
                                                 Image.Resampling.BICUBIC)) / 255
  ours = pixels.upscale(u8 / 255, scale=scale)
  assert ours.shape == theirs.shape
  # Rounding: half a level at the end, and half a level after the first pass, amplified by the
  # second pass's sum of absolute weights (< 1.15): at most 1.075 levels.
  diff = np.abs(ours - theirs)
  assert diff.max() <= 1.075 / 255 and diff.mean() < 0.4 / 255


def test_upscale_of_a_constant_is_the_constant():
  up = pixels.upscale(np.full((5, 7, 3), 0.3, np.float32))
  np.testing.assert_allclose(up, 0.3, rtol=0, atol=1e-6)


# files.atomic_write


def _umask() -> int:
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def test_atomic_write_bytes_text_and_callable(tmp_path):
  path = tmp_path / 'a' / 'b' / 'out.json'
  files.atomic_write(path, b'\x00bytes')
  assert path.read_bytes() == b'\x00bytes'
  files.atomic_write(str(path), 'text é\n')
  assert path.read_bytes() == 'text é\n'.encode()
  seen = []

  def write(tmp: str) -> None:
    seen.append(pathlib.Path(tmp))
    assert isinstance(tmp, str) and pathlib.Path(tmp).exists()
    pathlib.Path(tmp).write_bytes(b'by callable')

  files.atomic_write(path, write)
  assert path.read_bytes() == b'by callable'
  (tmp,) = seen
  assert tmp.parent == path.parent and tmp.name.startswith('.out.json.') and tmp.suffix == '.json'
  assert [p.name for p in path.parent.iterdir()] == ['out.json']


def test_atomic_write_replaces_a_symlink_not_its_target(tmp_path):
  target = tmp_path / 'target.txt'
  target.write_bytes(b'the target')
  link = tmp_path / 'link.txt'
  link.symlink_to(target)
  files.atomic_write(link, b'new')
  assert not link.is_symlink() and link.read_bytes() == b'new'
  assert target.read_bytes() == b'the target'
  link.unlink()
  link.symlink_to(target)
  files.atomic_write(link, lambda tmp: pathlib.Path(tmp).write_bytes(b'newer'))
  assert not link.is_symlink() and link.read_bytes() == b'newer'
  assert target.read_bytes() == b'the target'


@pytest.mark.parametrize('error', [RuntimeError('failed'), KeyboardInterrupt()])
def test_atomic_write_error_keeps_the_old_file_and_no_temporary(tmp_path, error):
  path = tmp_path / 'out.png'
  path.write_bytes(b'the old file')

  def write(tmp: str) -> None:
    pathlib.Path(tmp).write_bytes(b'half a')
    raise error

  with pytest.raises(type(error)):
    files.atomic_write(path, write)
  assert path.read_bytes() == b'the old file'
  assert [p.name for p in tmp_path.iterdir()] == ['out.png']

  def write_and_delete(tmp: str) -> None:  # the writer removed its file itself
    os.unlink(tmp)
    raise OSError('gone')

  with pytest.raises(OSError, match='gone'):
    files.atomic_write(path, write_and_delete)
  assert [p.name for p in tmp_path.iterdir()] == ['out.png']


def test_atomic_write_onto_a_folder_fails_cleanly(tmp_path):
  (tmp_path / 'out').mkdir()
  with pytest.raises(OSError):
    files.atomic_write(tmp_path / 'out', b'x')
  assert [p.name for p in tmp_path.iterdir()] == ['out']


@pytest.mark.skipif(os.name != 'posix', reason='POSIX permissions')
@pytest.mark.parametrize('mask', [0o027, 0o002, 0o077])
def test_atomic_write_gives_the_usual_permissions(tmp_path, mask):
  old = os.umask(mask)
  try:
    assert files._umask() == mask
    files.atomic_write(tmp_path / 'bytes', b'x')
    files.atomic_write(tmp_path / 'callable', lambda tmp: pathlib.Path(tmp).write_bytes(b'x'))
    (tmp_path / 'normal').write_bytes(b'x')
  finally:
    os.umask(old)
  assert _umask() == old
  for name in ('bytes', 'callable', 'normal'):
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask
