"""Tests of jdsr.io.imagefile: every test image is made here with Pillow or NumPy."""

from __future__ import annotations

import io
import os
import pathlib
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import features

from jdsr.io import imagefile
from jdsr.io.imagefile import ImageError, list_images, read_image, write_image
from jdsr.io.pixels import quantize


def _rng() -> np.random.Generator:
  return np.random.default_rng(0)


def _png16(path: pathlib.Path, samples: np.ndarray) -> None:
  """A 16-bit PNG of H×W×C uint16 samples (C = 1, 2, 3, 4), which Pillow cannot write."""
  h, w, c = samples.shape
  colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
  rows = b''.join(b'\0' + samples[y].astype('>u2').tobytes() for y in range(h))

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

  path.write_bytes(b'\x89PNG\r\n\x1a\n'
                   + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, colour_type, 0, 0, 0))
                   + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def _tiff16_rgb(path: pathlib.Path, samples: np.ndarray) -> None:
  """An uncompressed little-endian 16-bit RGB TIFF of H×W×3 uint16 samples."""
  h, w, _ = samples.shape
  data = samples.astype('<u2').tobytes()
  n = 9
  bits_at = 8 + 2 + 12 * n + 4
  data_at = bits_at + 6
  tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, bits_at), (259, 3, 1, 1), (262, 3, 1, 2),
          (273, 4, 1, data_at), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(data))]
  ifd = b''.join(struct.pack('<HHII', t, kind, count, value) if count > 1 or kind == 4
                 else struct.pack('<HHIHH', t, kind, count, value, 0)
                 for t, kind, count, value in tags)
  path.write_bytes(b'II' + struct.pack('<HI', 42, 8) + struct.pack('<H', n) + ifd
                   + struct.pack('<I', 0) + struct.pack('<3H', 16, 16, 16) + data)


def _all_bytes_rgb() -> np.ndarray:
  """A 16×16×3 uint8 image holding every value 0..255 in each channel."""
  values = np.arange(256, dtype=np.uint8).reshape(16, 16)
  return np.stack([values, values[::-1], values.T], axis=2)


# Round trips.


def test_rgb_png_8bit_round_trip_is_exact(tmp_path):
  pixels = _all_bytes_rgb()
  PILImage.fromarray(pixels).save(tmp_path / 'in.png')
  image = read_image(tmp_path / 'in.png')
  assert image.rgb.dtype == np.float32 and image.rgb.shape == (16, 16, 3)
  np.testing.assert_array_equal(image.rgb, pixels.astype(np.float32) / 255)
  assert (image.alpha, image.bits, image.gray) == (None, 8, False)

  write_image(tmp_path / 'out.png', image.rgb)
  with PILImage.open(tmp_path / 'out.png') as written:
    assert written.mode == 'RGB'
    np.testing.assert_array_equal(np.asarray(written), pixels)


def test_gray_png_16bit_round_trip_is_exact(tmp_path):
  values = np.arange(65536, dtype=np.uint16).reshape(256, 256)  # every 16-bit value
  PILImage.fromarray(values).save(tmp_path / 'in.png')
  image = read_image(tmp_path / 'in.png')
  assert (image.bits, image.gray, image.alpha) == (16, True, None)
  expected = values.astype(np.float32) / 65535
  for c in range(3):
    np.testing.assert_array_equal(image.rgb[..., c], expected)

  write_image(tmp_path / 'out.png', image.rgb, bits=16, gray=True)
  with PILImage.open(tmp_path / 'out.png') as written:
    assert written.mode == 'I;16'
    np.testing.assert_array_equal(np.asarray(written), values)
  np.testing.assert_array_equal(read_image(tmp_path / 'out.png').rgb, image.rgb)


@pytest.mark.parametrize('mode', ['I;16', 'I;16B'])
def test_gray_tiff_16bit_round_trip_is_exact(tmp_path, mode):
  values = _rng().integers(0, 65536, (7, 9), dtype=np.uint16)
  order = '>u2' if mode == 'I;16B' else '<u2'
  PILImage.frombytes(mode, (9, 7), values.astype(order).tobytes()).save(tmp_path / 'in.tif')
  image = read_image(tmp_path / 'in.tif')
  assert (image.bits, image.gray) == (16, True)
  np.testing.assert_array_equal(image.rgb[..., 1], values.astype(np.float32) / 65535)

  write_image(tmp_path / 'out.tiff', image.rgb, bits=16, gray=True)
  with PILImage.open(tmp_path / 'out.tiff') as written:
    assert written.mode == 'I;16'
    np.testing.assert_array_equal(np.asarray(written), values)


def test_32bit_integer_tiff_is_read_as_16bit_gray_clipped(tmp_path):
  values = np.array([[-5, 0, 300, 65535, 70000]], dtype=np.int32)
  PILImage.fromarray(values).save(tmp_path / 'in.tif')
  image = read_image(tmp_path / 'in.tif')
  assert (image.bits, image.gray) == (16, True)
  np.testing.assert_array_equal(image.rgb[0, :, 2], np.float32([0, 0, 300 / 65535, 1, 1]))


def _deep_samples(shape) -> np.ndarray:
  """Random uint16 samples, none a multiple of 257, so an 8-bit path cannot keep them."""
  samples = _rng().integers(0, 65536, shape, dtype=np.uint16)
  samples[samples % 257 == 0] += 1
  return samples


def _read_deep_rgb_silently(path, samples):
  """Reads a 16-bit RGB file with warnings as errors; checks it holds ``samples`` exactly."""
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    image = read_image(path)
  assert (image.bits, image.gray, image.alpha) == (16, False, None)
  assert image.rgb.dtype == np.float32 and image.rgb.shape == samples.shape
  np.testing.assert_array_equal(image.rgb, samples.astype(np.float32) / 65535)


def test_16bit_rgb_png_is_read_at_full_depth(tmp_path):
  samples = _deep_samples((5, 6, 3))
  _png16(tmp_path / 'deep.png', samples)
  _read_deep_rgb_silently(tmp_path / 'deep.png', samples)


def test_16bit_rgba_and_gray_alpha_png_are_read_at_full_depth(tmp_path):
  samples = _deep_samples((5, 6, 4))
  _png16(tmp_path / 'rgba.png', samples)
  image = read_image(tmp_path / 'rgba.png')
  assert (image.bits, image.gray) == (16, False)
  np.testing.assert_array_equal(image.rgb, samples[..., :3].astype(np.float32) / 65535)
  np.testing.assert_array_equal(image.alpha, samples[..., 3].astype(np.float32) / 65535)

  _png16(tmp_path / 'la.png', samples[..., :2])
  image = read_image(tmp_path / 'la.png')
  assert (image.bits, image.gray) == (16, True)
  for c in range(3):
    np.testing.assert_array_equal(image.rgb[..., c], samples[..., 0].astype(np.float32) / 65535)
  np.testing.assert_array_equal(image.alpha, samples[..., 1].astype(np.float32) / 65535)


def test_16bit_rgb_png_written_by_pypng_is_read_at_full_depth(tmp_path):
  import png
  samples = _deep_samples((4, 7, 3))
  with open(tmp_path / 'pypng.png', 'wb') as f:
    png.Writer(7, 4, greyscale=False, bitdepth=16).write(f, samples.reshape(4, 21).tolist())
  image = read_image(tmp_path / 'pypng.png')
  assert (image.bits, image.gray, image.alpha) == (16, False, None)
  np.testing.assert_array_equal(image.rgb, samples.astype(np.float32) / 65535)


def test_16bit_rgb_tiff_is_read_at_full_depth(tmp_path):
  samples = _deep_samples((5, 6, 3))
  _tiff16_rgb(tmp_path / 'deep.tif', samples)
  _read_deep_rgb_silently(tmp_path / 'deep.tif', samples)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_orientation_is_applied_to_16bit_rgb_tiff(tmp_path, orientation):
  import tifffile
  samples = _deep_samples((3, 4, 3))
  tifffile.imwrite(tmp_path / 'in.tif', samples, photometric='rgb', metadata=None,
                   extratags=[(274, 3, 1, orientation, True)])
  image = read_image(tmp_path / 'in.tif')
  assert image.bits == 16
  expected = _UPRIGHT[orientation](samples).astype(np.float32) / 65535
  np.testing.assert_array_equal(image.rgb, expected)


def test_exif_orientation_is_applied_to_16bit_rgb_png(tmp_path):
  samples = _deep_samples((3, 4, 3))
  _png16(tmp_path / 'plain.png', samples)
  exif = _orientation_6().tobytes()  # an eXIf chunk (Pillow cannot write a 16-bit RGB PNG)
  data = (tmp_path / 'plain.png').read_bytes()
  chunk = struct.pack('>I', len(exif)) + b'eXIf' + exif + struct.pack('>I', zlib.crc32(b'eXIf' + exif))
  (tmp_path / 'rotated.png').write_bytes(data[:33] + chunk + data[33:])  # after IHDR
  image = read_image(tmp_path / 'rotated.png')
  assert image.bits == 16
  np.testing.assert_array_equal(image.rgb, _UPRIGHT[6](samples).astype(np.float32) / 65535)


def test_no_warning_for_8bit_and_16bit_gray_files(tmp_path):
  PILImage.fromarray(_all_bytes_rgb()).save(tmp_path / 'a.png')
  PILImage.fromarray(_all_bytes_rgb()).save(tmp_path / 'a.tif')
  _png16(tmp_path / 'g.png', np.zeros((2, 2, 1), np.uint16))
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    for name in ('a.png', 'a.tif', 'g.png'):
      read_image(tmp_path / name)


@pytest.mark.parametrize('suffix, gray, with_alpha', [
    ('.png', False, False), ('.png', False, True), ('.png', True, True),
    ('.tif', False, False), ('.tif', False, True)])
def test_16bit_colour_and_alpha_round_trip_is_exact(tmp_path, suffix, gray, with_alpha):
  samples = _deep_samples((5, 6, 4))
  values = samples.astype(np.float32) / 65535
  rgb = np.repeat(values[..., :1], 3, axis=2) if gray else values[..., :3]
  alpha = values[..., 3] if with_alpha else None
  path = tmp_path / f'out{suffix}'
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    write_image(path, rgb, alpha, bits=16, gray=gray)
    image = read_image(path)
  assert (image.bits, image.gray) == (16, gray)
  np.testing.assert_array_equal(image.rgb, rgb)
  if with_alpha:
    np.testing.assert_array_equal(image.alpha, alpha)
  else:
    assert image.alpha is None
  assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_16bit_gray_alpha_tiff_write_falls_back_to_8bits_with_a_warning(tmp_path):
  rgb = _rng().random((4, 5, 3), dtype=np.float32)
  alpha = np.full((4, 5), 0.5, np.float32)
  with pytest.warns(UserWarning, match=r'out\.tif: cannot write 16-bit gray\+alpha TIFF'):
    write_image(tmp_path / 'out.tif', rgb, alpha, bits=16, gray=True)
  with PILImage.open(tmp_path / 'out.tif') as written:
    assert written.mode == 'LA'
  image = read_image(tmp_path / 'out.tif')
  assert (image.bits, image.gray) == (8, True)
  np.testing.assert_allclose(image.rgb, np.broadcast_to(rgb.mean(axis=2, keepdims=True), rgb.shape),
                             atol=0.5 / 255 + 1e-6)


def test_failed_16bit_colour_write_leaves_nothing(tmp_path, monkeypatch):
  import png

  def fail(self, outfile, rows):
    outfile.write(b'\x89PNG partial')
    raise OSError('disk full')
  monkeypatch.setattr(png.Writer, 'write_packed', fail)
  with pytest.raises(ImageError, match='disk full') as error:
    write_image(tmp_path / 'out.png', np.zeros((4, 4, 3), np.float32), bits=16)
  _assert_one_line_naming(error, 'out.png')
  assert list(tmp_path.iterdir()) == []


def test_corrupt_16bit_colour_png_is_an_image_error(tmp_path):
  samples = _deep_samples((5, 6, 3))
  _png16(tmp_path / 'deep.png', samples)
  data = bytearray((tmp_path / 'deep.png').read_bytes())
  data[-20] ^= 0xFF  # inside IDAT: bad CRC
  (tmp_path / 'bad.png').write_bytes(bytes(data))
  with pytest.raises(ImageError) as error:
    read_image(tmp_path / 'bad.png')
  _assert_one_line_naming(error, 'bad.png')


def test_16bit_jpeg_write_falls_back_to_8bits_with_a_warning(tmp_path):
  with pytest.warns(UserWarning, match=r'out\.jpg: cannot write 16-bit JPEG'):
    write_image(tmp_path / 'out.jpg', np.zeros((4, 4, 3), np.float32), bits=16, gray=True)
  with PILImage.open(tmp_path / 'out.jpg') as written:
    assert written.mode == 'L'


def test_rgba_png_keeps_alpha(tmp_path):
  pixels = _rng().integers(0, 256, (6, 7, 4), dtype=np.uint8)
  PILImage.fromarray(pixels).save(tmp_path / 'in.png')
  image = read_image(tmp_path / 'in.png')
  np.testing.assert_array_equal(image.rgb, pixels[..., :3].astype(np.float32) / 255)
  np.testing.assert_array_equal(image.alpha, pixels[..., 3].astype(np.float32) / 255)

  write_image(tmp_path / 'out.png', image.rgb, image.alpha)
  with PILImage.open(tmp_path / 'out.png') as written:
    assert written.mode == 'RGBA'
    np.testing.assert_array_equal(np.asarray(written), pixels)


def test_gray_l_png_round_trip(tmp_path):
  values = np.arange(256, dtype=np.uint8).reshape(16, 16)
  PILImage.fromarray(values).save(tmp_path / 'in.png')
  image = read_image(tmp_path / 'in.png')
  assert (image.gray, image.bits, image.alpha) == (True, 8, None)
  for c in range(3):
    np.testing.assert_array_equal(image.rgb[..., c], values.astype(np.float32) / 255)

  write_image(tmp_path / 'out.png', image.rgb, gray=True)
  with PILImage.open(tmp_path / 'out.png') as written:
    assert written.mode == 'L'
    np.testing.assert_array_equal(np.asarray(written), values)


def test_gray_write_is_the_mean_of_the_channels(tmp_path):
  rgb = np.zeros((2, 3, 3), np.float32)
  rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0.9, 0.3, 0.0  # mean 0.4; first channel 0.9
  write_image(tmp_path / 'out.png', rgb, gray=True)
  with PILImage.open(tmp_path / 'out.png') as written:
    np.testing.assert_array_equal(np.asarray(written), np.full((2, 3), 102, np.uint8))


def test_gray_with_alpha_round_trip(tmp_path):
  pixels = _rng().integers(0, 256, (4, 5, 2), dtype=np.uint8)
  PILImage.fromarray(pixels, mode='LA').save(tmp_path / 'in.png')
  image = read_image(tmp_path / 'in.png')
  assert image.gray
  np.testing.assert_array_equal(image.rgb[..., 2], pixels[..., 0].astype(np.float32) / 255)
  np.testing.assert_array_equal(image.alpha, pixels[..., 1].astype(np.float32) / 255)
  write_image(tmp_path / 'out.png', image.rgb, image.alpha, gray=True)
  with PILImage.open(tmp_path / 'out.png') as written:
    assert written.mode == 'LA'
    np.testing.assert_array_equal(np.asarray(written), pixels)


def test_gray_png_with_transparent_value_gets_alpha(tmp_path):
  values = np.array([[0, 7, 200]], np.uint8)
  PILImage.fromarray(values).save(tmp_path / 'in.png', transparency=7)
  image = read_image(tmp_path / 'in.png')
  assert image.gray
  np.testing.assert_array_equal(image.alpha, np.float32([[1, 0, 1]]))


def _palette_image() -> PILImage.Image:
  image = PILImage.new('P', (4, 2))
  image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255])  # black, red, blue
  image.putdata([0, 1, 2, 1, 2, 2, 0, 1])
  return image


def test_palette_png_with_transparency(tmp_path):
  _palette_image().save(tmp_path / 'in.png', transparency=0)
  image = read_image(tmp_path / 'in.png')
  assert (image.gray, image.bits) == (False, 8)
  np.testing.assert_array_equal(image.alpha, np.float32([[0, 1, 1, 1], [1, 1, 0, 1]]))
  np.testing.assert_array_equal(image.rgb[0, 1], [1, 0, 0])
  np.testing.assert_array_equal(image.rgb[0, 2], [0, 0, 1])


def test_palette_without_transparency_has_no_alpha(tmp_path):
  _palette_image().save(tmp_path / 'in.gif')
  image = read_image(tmp_path / 'in.gif')
  assert image.alpha is None
  np.testing.assert_array_equal(image.rgb[1, 0], [0, 0, 1])


def test_bilevel_image(tmp_path):
  bits = np.array([[True, False, True], [False, False, True]])
  PILImage.fromarray(bits).save(tmp_path / 'in.png')
  with PILImage.open(tmp_path / 'in.png') as source:
    assert source.mode == '1'
  image = read_image(tmp_path / 'in.png')
  assert (image.gray, image.bits) == (True, 8)
  np.testing.assert_array_equal(image.rgb[..., 0], bits.astype(np.float32))


def test_cmyk_is_converted_to_rgb(tmp_path):
  PILImage.new('CMYK', (3, 2), (0, 255, 255, 0)).save(tmp_path / 'in.tif')  # red
  image = read_image(tmp_path / 'in.tif')
  assert image.rgb.shape == (2, 3, 3) and not image.gray
  np.testing.assert_array_equal(image.rgb, np.broadcast_to(np.float32([1, 0, 0]), (2, 3, 3)))


def test_jpeg_round_trip_is_close(tmp_path):
  y, x = np.mgrid[0:32, 0:48].astype(np.float32)
  rgb = np.stack([x / 47, y / 31, (x + y) / 78], axis=2)  # smooth: JPEG at quality 95 is close
  write_image(tmp_path / 'out.jpg', rgb)
  with PILImage.open(tmp_path / 'out.jpg') as written:
    assert (written.format, written.mode) == ('JPEG', 'RGB')
  image = read_image(tmp_path / 'out.jpg')
  assert image.rgb.shape == rgb.shape and image.bits == 8
  assert np.abs(image.rgb - rgb).mean() < 1.5 / 255
  write_image(tmp_path / 'out.jpeg', rgb, gray=True)
  assert read_image(tmp_path / 'out.jpeg').gray


def test_tiff_round_trip_is_exact(tmp_path):
  pixels = _all_bytes_rgb()
  write_image(tmp_path / 'out.tif', pixels.astype(np.float32) / 255)
  with PILImage.open(tmp_path / 'out.tif') as written:
    assert (written.format, written.mode) == ('TIFF', 'RGB')
  image = read_image(tmp_path / 'out.tif')
  np.testing.assert_array_equal(image.rgb, pixels.astype(np.float32) / 255)

  alpha = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
  write_image(tmp_path / 'out.TIFF', image.rgb, alpha)
  image = read_image(tmp_path / 'out.TIFF')
  np.testing.assert_array_equal(image.alpha, quantize(alpha).astype(np.float32) / 255)


def test_write_clamps_and_rounds_like_the_metrics(tmp_path):
  rgb = np.concatenate([_rng().uniform(-0.5, 1.5, (8, 8, 3)),
                        np.full((1, 8, 3), 0.5 / 255), np.full((1, 8, 3), 1.5 / 255)]).astype(np.float32)
  write_image(tmp_path / 'out.png', rgb)
  with PILImage.open(tmp_path / 'out.png') as written:
    np.testing.assert_array_equal(np.asarray(written), quantize(rgb))


def test_write_rejects_bad_arrays(tmp_path):
  with pytest.raises(TypeError, match='float'):
    write_image(tmp_path / 'a.png', np.zeros((2, 2, 3), np.uint8))
  with pytest.raises(ValueError, match='H×W×3'):
    write_image(tmp_path / 'a.png', np.zeros((2, 2), np.float32))
  with pytest.raises(ValueError, match='alpha'):
    write_image(tmp_path / 'a.png', np.zeros((2, 2, 3), np.float32), np.zeros((3, 2), np.float32))
  with pytest.raises(ValueError, match='bits'):
    write_image(tmp_path / 'a.png', np.zeros((2, 2, 3), np.float32), bits=12)
  assert list(tmp_path.iterdir()) == []


# EXIF orientation.


def _orientation_6() -> PILImage.Exif:
  exif = PILImage.Exif()
  exif[0x0112] = 6  # the camera was turned: rotate 90° clockwise to display
  return exif


def test_exif_orientation_is_applied_to_jpeg(tmp_path):
  PILImage.new('RGB', (60, 40), (200, 100, 50)).save(tmp_path / 'photo.jpg', exif=_orientation_6())
  with PILImage.open(tmp_path / 'photo.jpg') as source:
    assert source.size == (60, 40) and source.getexif()[0x0112] == 6
  assert read_image(tmp_path / 'photo.jpg').rgb.shape == (60, 40, 3)


def test_exif_orientation_rotates_clockwise(tmp_path):
  pixels = np.zeros((2, 3, 3), np.uint8)
  pixels[0, 0] = 255  # top-left is white; after a clockwise turn it is top-right
  PILImage.fromarray(pixels).save(tmp_path / 'in.png', exif=_orientation_6())
  image = read_image(tmp_path / 'in.png')
  assert image.rgb.shape == (3, 2, 3)
  np.testing.assert_array_equal(image.rgb[..., 0], np.float32([[0, 1], [0, 0], [0, 0]]))


_UPRIGHT = {  # what each EXIF/TIFF orientation does to the stored pixels to show them
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize('orientation', range(1, 9))
@pytest.mark.parametrize('mode', ['RGB', 'L'])
@pytest.mark.parametrize('suffix, options', [
    ('.png', {}), ('.tif', {}), ('.tif', {'compression': 'tiff_deflate'}),
    ('.jpg', {'quality': 100, 'subsampling': 0})], ids=['png', 'tif', 'tif-deflate', 'jpg'])
def test_every_orientation_is_applied(tmp_path, orientation, mode, suffix, options):
  # Uncompressed TIFF (in modes Pillow memory-maps: L, P, RGBA, I;16..., not RGB) with
  # orientations 5-8 comes out scrambled from Pillow 13 when it opens the file by
  # name: read_image must not.
  if options.get('compression') and not features.check('libtiff'):
    pytest.skip('Pillow without libtiff')
  pixels = np.kron(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20, np.ones((8, 8), np.uint8))
  if mode == 'RGB':  # 24×32 in 8×8 blocks for JPEG
    pixels = np.stack([pixels, 255 - pixels, pixels // 2], axis=2)
  exif = PILImage.Exif()
  exif[0x0112] = orientation
  PILImage.fromarray(pixels).save(tmp_path / f'in{suffix}', exif=exif, **options)
  image = read_image(tmp_path / f'in{suffix}')
  expected = _UPRIGHT[orientation](pixels).astype(np.float32) / 255
  if mode == 'L':
    expected = np.repeat(expected[..., None], 3, axis=2)
  assert image.rgb.shape == expected.shape and image.gray == (mode == 'L')
  np.testing.assert_allclose(image.rgb, expected, atol=3 / 255 if suffix == '.jpg' else 0)


@pytest.mark.parametrize('orientation', [3, 6, 7])
def test_orientation_is_applied_to_16bit_gray(tmp_path, orientation):
  values = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
  PILImage.fromarray(values).save(tmp_path / 'in.tif', tiffinfo={274: orientation})
  image = read_image(tmp_path / 'in.tif')
  assert image.bits == 16
  np.testing.assert_array_equal(image.rgb[..., 0], _UPRIGHT[orientation](values).astype(np.float32) / 65535)


# Errors.


def _assert_one_line_naming(error: pytest.ExceptionInfo, name: str) -> None:
  message = str(error.value)
  assert isinstance(error.value, ValueError)
  assert name in message and '\n' not in message, message


def _real_png_bytes() -> bytes:
  buffer = io.BytesIO()
  PILImage.fromarray(_rng().integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, 'PNG')
  return buffer.getvalue()


def test_read_missing_file(tmp_path):
  with pytest.raises(ImageError, match='no such file') as error:
    read_image(tmp_path / 'missing.png')
  _assert_one_line_naming(error, 'missing.png')


def test_read_a_folder(tmp_path):
  (tmp_path / 'folder.png').mkdir()
  with pytest.raises(ImageError, match='not a file') as error:
    read_image(tmp_path / 'folder.png')
  _assert_one_line_naming(error, 'folder.png')


def test_read_empty_file(tmp_path):
  (tmp_path / 'empty.png').write_bytes(b'')
  with pytest.raises(ImageError, match='empty') as error:
    read_image(tmp_path / 'empty.png')
  _assert_one_line_naming(error, 'empty.png')


def test_read_text_file_named_png(tmp_path):
  (tmp_path / 'notes.png').write_text('these are not pixels\nsecond line\n')
  with pytest.raises(ImageError, match='not an image') as error:
    read_image(tmp_path / 'notes.png')
  _assert_one_line_naming(error, 'notes.png')


def test_read_truncated_png(tmp_path):
  data = _real_png_bytes()
  (tmp_path / 'half.png').write_bytes(data[:len(data) // 2])
  with pytest.raises(ImageError, match='cannot read image') as error:
    read_image(tmp_path / 'half.png')
  _assert_one_line_naming(error, 'half.png')


def test_read_corrupt_png_data(tmp_path):
  data = bytearray(_real_png_bytes())
  data[-200:-20] = bytes(180)  # zeros inside the compressed pixels
  (tmp_path / 'bad.png').write_bytes(bytes(data))
  with pytest.raises(ImageError) as error:
    read_image(tmp_path / 'bad.png')
  _assert_one_line_naming(error, 'bad.png')


def test_read_truncated_jpeg(tmp_path):
  buffer = io.BytesIO()
  PILImage.fromarray(_rng().integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, 'JPEG')
  (tmp_path / 'half.jpg').write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
  with pytest.raises(ImageError, match='truncated') as error:
    read_image(tmp_path / 'half.jpg')
  _assert_one_line_naming(error, 'half.jpg')


def test_read_unsupported_mode(tmp_path):
  PILImage.fromarray(np.zeros((2, 2), np.float32)).save(tmp_path / 'float.tif')
  with pytest.raises(ImageError, match="unsupported image mode 'F'") as error:
    read_image(tmp_path / 'float.tif')
  _assert_one_line_naming(error, 'float.tif')


def test_error_message_stays_on_one_line_for_odd_names(tmp_path):
  with pytest.raises(ImageError) as error:
    read_image(tmp_path / 'two\nlines.png')
  assert '\n' not in str(error.value) and 'two\\nlines.png' in str(error.value)


def test_write_unknown_extension(tmp_path):
  with pytest.raises(ImageError, match="unknown image extension '.gif'") as error:
    write_image(tmp_path / 'out.gif', np.zeros((2, 2, 3), np.float32))
  _assert_one_line_naming(error, 'out.gif')
  assert list(tmp_path.iterdir()) == []


def test_write_alpha_to_jpeg(tmp_path):
  with pytest.raises(ImageError, match='alpha') as error:
    write_image(tmp_path / 'out.jpg', np.zeros((2, 2, 3), np.float32), np.ones((2, 2), np.float32))
  _assert_one_line_naming(error, 'out.jpg')
  assert list(tmp_path.iterdir()) == []


# Atomic writes.


def _failing_save(error: BaseException, calls: list):
  """A PIL.Image.Image.save that writes part of a file, then raises ``error``."""
  def save(self, fp, format=None, **params):
    calls.append((pathlib.Path(fp), format))
    with open(fp, 'wb') as f:
      f.write(b'\x89PNG\r\n\x1a\n partial')
    raise error
  return save


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(PILImage.Image, 'save', _failing_save(OSError('disk full'), calls))
  with pytest.raises(ImageError, match='disk full') as error:
    write_image(tmp_path / 'out.png', np.zeros((4, 4, 3), np.float32))
  _assert_one_line_naming(error, 'out.png')
  assert len(calls) == 1  # it did reach Pillow
  assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_existing_file(tmp_path, monkeypatch):
  (tmp_path / 'out.png').write_bytes(b'the old picture')
  monkeypatch.setattr(PILImage.Image, 'save', _failing_save(OSError('disk full'), []))
  with pytest.raises(ImageError):
    write_image(tmp_path / 'out.png', np.zeros((4, 4, 3), np.float32))
  assert (tmp_path / 'out.png').read_bytes() == b'the old picture'
  assert [p.name for p in tmp_path.iterdir()] == ['out.png']


def test_failed_write_with_another_error_cleans_up_and_reraises_it(tmp_path, monkeypatch):
  monkeypatch.setattr(PILImage.Image, 'save', _failing_save(KeyboardInterrupt(), []))
  with pytest.raises(KeyboardInterrupt):
    write_image(tmp_path / 'out.png', np.zeros((4, 4, 3), np.float32))
  assert list(tmp_path.iterdir()) == []


def test_write_goes_through_a_temporary_file_in_the_same_folder(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(PILImage.Image, 'save', _failing_save(OSError('stop'), calls))
  with pytest.raises(ImageError):
    write_image(tmp_path / 'photo.TIF', np.zeros((4, 4, 3), np.float32))
  (temporary, file_format), = calls
  assert temporary.parent == tmp_path and temporary.name != 'photo.TIF'
  assert temporary.name.startswith('.photo.TIF.tmp-') and temporary.suffix == '.TIF'
  assert file_format == 'TIFF'


def test_write_replaces_an_existing_file_and_creates_folders(tmp_path):
  path = tmp_path / 'a' / 'b' / 'out.png'
  write_image(path, np.zeros((2, 2, 3), np.float32))
  write_image(path, np.ones((2, 2, 3), np.float32))
  np.testing.assert_array_equal(read_image(path).rgb, np.ones((2, 2, 3), np.float32))
  assert [p.name for p in path.parent.iterdir()] == ['out.png']


@pytest.mark.skipif(os.name != 'posix', reason='POSIX permissions')
def test_written_file_has_the_usual_permissions(tmp_path):
  mask = os.umask(0o027)
  try:
    write_image(tmp_path / 'out.png', np.zeros((2, 2, 3), np.float32))
  finally:
    os.umask(mask)
  assert (tmp_path / 'out.png').stat().st_mode & 0o777 == 0o640


def test_write_into_a_file_as_folder_is_an_image_error(tmp_path):
  (tmp_path / 'file').write_bytes(b'')
  with pytest.raises(ImageError) as error:
    write_image(tmp_path / 'file' / 'out.png', np.zeros((2, 2, 3), np.float32))
  _assert_one_line_naming(error, 'out.png')


# Listing.


def test_list_images_filters_and_sorts(tmp_path):
  names = ['b.jpg', 'A.PNG', 'c.JPEG', 'd.tif', 'e.Tiff', 'f.bmp', 'g.webp', 'a.png',
           'notes.txt', 'anim.gif', 'png', '.hidden.png', '._a.jpg', '.out.tmp-x1y2.png']
  for name in names:
    (tmp_path / name).write_bytes(b'x')
  (tmp_path / 'folder.png').mkdir()
  (tmp_path / 'folder.png' / 'inner.png').write_bytes(b'x')
  found = list_images(tmp_path)
  assert all(isinstance(p, pathlib.Path) and p.parent == tmp_path for p in found)
  assert [p.name for p in found] == ['A.PNG', 'a.png', 'b.jpg', 'c.JPEG', 'd.tif', 'e.Tiff',
                                     'f.bmp', 'g.webp']


def test_list_images_of_a_missing_folder(tmp_path):
  with pytest.raises(ImageError, match='no such folder') as error:
    list_images(tmp_path / 'nowhere')
  _assert_one_line_naming(error, 'nowhere')
  (tmp_path / 'file.png').write_bytes(b'x')
  with pytest.raises(ImageError):
    list_images(tmp_path / 'file.png')


def test_suffix_lists_agree():
  assert set(imagefile.WRITE_FORMATS) <= set(imagefile.IMAGE_SUFFIXES)
