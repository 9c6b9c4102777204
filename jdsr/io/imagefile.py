"""Reading and writing images for the restoration and evaluation tools.

``read_image`` opens anything Pillow opens (PNG, JPEG, TIFF, BMP, WebP, GIF...)
and returns an ``Image``: float32 RGB in [0, 1], an optional alpha channel, the
bit depth of the samples and whether the source was grayscale. The EXIF
orientation is applied, so photos come out upright. Colour management is not:
ICC profiles are ignored and CMYK is converted to RGB by Pillow's naive formula.

``write_image`` writes PNG, JPEG (quality 95) or TIFF by the file's extension,
atomically (``jdsr.io.files.atomic_write``). Samples are converted by ``jdsr.io.pixels``.

16-bit samples:

* Grayscale: full depth both ways, through Pillow. Pillow 13 reads 16-bit gray
  PNG and TIFF as mode 'I;16' / 'I;16B' (and 32-bit integer TIFF as 'I',
  clipped to [0, 65535] here), and writes mode 'I;16' to PNG and TIFF.
* Colour: full depth both ways, through pypng and tifffile. Pillow 13 has no
  16-bit multi-channel mode and decodes 16-bit RGB, RGBA and gray+alpha PNG and
  16-bit RGB(A) TIFF to 8 bits by keeping the high byte. ``read_image`` detects
  these files (the PNG header's bit depth, the TIFF BitsPerSample tag) and
  decodes them again at full depth: PNG with pypng (tRNS, interlace and
  sBIT handled by ``png.Reader.asDirect``; EXIF orientation applied), TIFF with
  tifffile (the TIFF orientation tag applied; associated alpha un-premultiplied).
  ``write_image(..., bits=16)`` writes RGB, RGBA and gray+alpha PNG with pypng and
  RGB and RGBA TIFF with tifffile, all at 16 bits per sample.
* Still 8 bits, with a warning: JPEG (``bits=16`` is written at 8 bits), 16-bit
  gray+alpha TIFF output (Pillow cannot read it back), and 16-bit colour TIFFs
  whose layout tifffile's decode does not give as uint16 RGB(A) (then Pillow's
  8-bit decode is returned with ``bits=8``).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import warnings
from typing import Callable

import numpy as np
import png  # pypng: 16-bit colour PNG, which Pillow 13 cannot decode or encode
import tifffile  # 16-bit colour TIFF, likewise
from PIL import Image as PILImage
from PIL import ImageOps

from jdsr.io import files, pixels

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.webp')
WRITE_FORMATS = {'.png': 'PNG', '.jpg': 'JPEG', '.jpeg': 'JPEG', '.tif': 'TIFF', '.tiff': 'TIFF'}
JPEG_QUALITY = 95

_MODES_16 = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')  # one 16-bit gray channel ('I' clipped)
_MODES_GRAY = ('1', 'L', 'LA', 'La')
_MODES_COLOUR = ('P', 'PA', 'RGB', 'RGBA', 'RGBa', 'RGBX', 'CMYK', 'YCbCr')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


class ImageError(ValueError):
  """An image file cannot be read or written; the one-line message names the file."""

  def __init__(self, path: str | os.PathLike, problem: str):
    message = f'{os.fspath(path)}: {problem}'
    super().__init__(message.replace('\r', '\\r').replace('\n', '\\n'))


class _Refused(Exception):
  """Carries what ``check_size`` raised past the handler that turns decoding errors into ImageError."""

  def __init__(self, error: Exception):
    super().__init__(error)
    self.error = error


@dataclasses.dataclass
class Image:
  """A decoded image.

  rgb: float32 H×W×3 in [0, 1]; a grayscale source is replicated to 3 channels.
  alpha: float32 H×W in [0, 1], or None when the source has no transparency.
  bits: 8 or 16, the bit depth of the samples in ``rgb`` (16 for 16-bit gray and
    colour sources, which are read at full depth: see the module docstring).
  gray: the source had one colour channel.
  """
  rgb: np.ndarray
  alpha: np.ndarray | None
  bits: int
  gray: bool


def read_image(path: str | os.PathLike,
               check_size: Callable[[int, int], None] | None = None) -> Image:
  """Reads an image file; raises ``ImageError`` if it is missing, empty, corrupt or unsupported.

  ``check_size(height, width)`` is called with the size in the file's header before
  anything is decoded; what it raises propagates (a small file can declare a huge image).

  16-bit colour PNG and TIFF are decoded at full depth with pypng / tifffile (see the
  module docstring).
  Multi-frame files (GIF, multi-page TIFF) give their first frame. The transparent
  value of a 16-bit gray PNG (tRNS) is ignored: Pillow has no 16-bit gray+alpha mode.
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise ImageError(path, 'no such file')
  if not path.is_file():
    raise ImageError(path, 'not a file')
  if path.stat().st_size == 0:
    raise ImageError(path, 'empty file')
  try:
    # Decode from a file object: with a file name, Pillow 13 memory-maps uncompressed
    # TIFF strips using the size it has already turned for orientations 5-8, and
    # returns scrambled pixels.
    with open(path, 'rb') as f:
      png_depth, png_colour_type = _png_header(f.read(26))
      f.seek(0)
      with PILImage.open(f) as im:
        if check_size is not None:
          try:
            check_size(im.height, im.width)
          except Exception as e:
            raise _Refused(e) from None
        im.load()
        source_format, tiff_bits = im.format, _tiff_bits_per_sample(im)
        exif_orientation = im.getexif().get(_ORIENTATION_TAG, 1) if source_format == 'PNG' else 1
        im = ImageOps.exif_transpose(im)  # a TIFF's orientation was applied by im.load()
  except _Refused as refused:
    raise refused.error from None
  except PILImage.UnidentifiedImageError:
    raise ImageError(path, 'not an image (or a format Pillow cannot read)') from None
  except Exception as e:  # truncated or corrupt: Pillow raises OSError, SyntaxError, EOFError...
    raise ImageError(path, f'cannot read image ({type(e).__name__}: {e})') from e

  if im.mode in _MODES_16:
    values = pixels.to_float(np.clip(np.asarray(im), 0, 65535).astype(np.uint16))
    return Image(np.repeat(values[..., None], 3, axis=2), None, 16, True)
  if im.mode not in _MODES_GRAY + _MODES_COLOUR:
    raise ImageError(path, f'unsupported image mode {im.mode!r}')

  has_alpha = 'A' in im.mode or 'a' in im.mode or 'transparency' in im.info
  gray = im.mode in _MODES_GRAY
  target = ('LA' if has_alpha else 'L') if gray else ('RGBA' if has_alpha else 'RGB')
  try:
    samples = pixels.to_float(np.asarray(im.convert(target)))
  except Exception as e:
    raise ImageError(path, f'cannot convert mode {im.mode!r} to {target} ({e})') from e
  samples = samples.reshape(samples.shape[:2] + (len(target),))
  rgb = np.repeat(samples[..., :1], 3, axis=2) if gray else samples[..., :3]
  alpha = samples[..., -1] if has_alpha else None

  if source_format == 'PNG':
    gray = gray or png_colour_type == 4  # Pillow reads 16-bit gray+alpha PNG as RGBA
    reduced = png_depth == 16 and png_colour_type in (2, 4, 6)
  else:
    reduced = source_format == 'TIFF' and max(tiff_bits) > 8
  if reduced:
    deep = _read_png16(path, exif_orientation) if source_format == 'PNG' else _read_tiff16(path)
    if deep is not None:
      return deep
    warnings.warn(f'{path}: 16-bit colour image read at 8 bits per sample (its TIFF '
                  'layout is not uint16 RGB or RGBA)', stacklevel=2)
  return Image(np.ascontiguousarray(rgb), alpha, 8, gray)


def write_image(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None, *,
                bits: int = 8, gray: bool = False) -> None:
  """Writes ``rgb`` (float H×W×3 in [0, 1], clamped and rounded) to a PNG, JPEG or TIFF file.

  The format is chosen by the extension (.png, .jpg/.jpeg at quality 95, .tif/.tiff).
  gray: write one channel, the mean of the three (an RGB network's output for a
    grayscale source has three nearly equal channels).
  alpha: float H×W in [0, 1], written as an alpha channel (LA or RGBA); JPEG has none.
  bits: 8 or 16. 16 bits are written to PNG (gray, gray+alpha, RGB, RGBA) and TIFF
    (gray, RGB, RGBA); JPEG and gray+alpha TIFF are written at 8 bits with a warning
    (see the module docstring).

  Quantisation: ``jdsr.io.pixels.quantize`` (clamp to [0, 1], ×(2**bits - 1), round to
  nearest with ties to even, in float32), as the metrics quantise. The write is
  ``jdsr.io.files.atomic_write``: ``path`` is either the complete new file or as it was,
  and parent folders are created. OSErrors are raised as ``ImageError``.
  """
  path = pathlib.Path(path)
  file_format = WRITE_FORMATS.get(path.suffix.lower())
  if file_format is None:
    raise ImageError(path, f'unknown image extension {path.suffix!r} (use one of '
                           f'{", ".join(WRITE_FORMATS)})')
  if file_format == 'JPEG' and alpha is not None:
    raise ImageError(path, 'JPEG cannot hold an alpha channel')
  if bits not in (8, 16):
    raise ValueError(f'bits must be 8 or 16, got {bits}')
  rgb = np.asarray(rgb)
  if not np.issubdtype(rgb.dtype, np.floating):
    raise TypeError(f'rgb must be float in [0, 1], got {rgb.dtype}')
  if rgb.ndim != 3 or rgb.shape[2] != 3:
    raise ValueError(f'rgb must be H×W×3, got shape {rgb.shape}')
  if alpha is not None and np.shape(alpha) != rgb.shape[:2]:
    raise ValueError(f'alpha must be H×W = {rgb.shape[:2]}, got shape {np.shape(alpha)}')

  if bits == 16 and (file_format == 'JPEG' or (file_format == 'TIFF' and gray and alpha is not None)):
    what = 'JPEG' if file_format == 'JPEG' else 'gray+alpha TIFF'
    warnings.warn(f'{path}: cannot write 16-bit {what}; writing 8 bits per sample', stacklevel=2)
    bits = 8
  channels = rgb.mean(axis=2, keepdims=True) if gray else rgb
  if alpha is not None:
    channels = np.concatenate([channels, np.asarray(alpha, np.float32)[..., None]], axis=2)
  samples = pixels.quantize(channels, bits)
  if bits == 16 and samples.shape[2] > 1:  # 16-bit multi-channel: Pillow has no mode for it
    save = _png16_saver(samples) if file_format == 'PNG' else _tiff16_saver(samples)
  else:
    image = PILImage.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)
    options = {'quality': JPEG_QUALITY} if file_format == 'JPEG' else {}

    def save(target: str) -> None:
      image.save(target, format=file_format, **options)

  try:
    files.atomic_write(path, save)
  except OSError as e:
    raise ImageError(path, f'cannot write ({type(e).__name__}: {e})') from e


def list_images(folder: str | os.PathLike) -> list[pathlib.Path]:
  """The image files directly in ``folder`` (by extension, any case), sorted by name.

  Hidden files (a leading '.', such as write_image's temporary files and macOS's
  '._NAME' metadata) are skipped.
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise ImageError(folder, 'no such folder')
  images = [p for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith('.') and p.is_file()]
  return sorted(images, key=lambda p: p.name)


_ORIENTATION_TAG = 0x0112  # EXIF and TIFF Orientation (274)


def _orient(samples: np.ndarray, orientation) -> np.ndarray:
  """Applies an EXIF/TIFF orientation (1-8) to H×W×C arrays, as ``ImageOps.exif_transpose`` does."""
  transforms = {
      2: lambda a: a[:, ::-1],
      3: lambda a: a[::-1, ::-1],
      4: lambda a: a[::-1],
      5: lambda a: a.swapaxes(0, 1),
      6: lambda a: np.rot90(a, -1),
      7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
      8: lambda a: np.rot90(a, 1),
  }
  transform = transforms.get(orientation)
  return np.ascontiguousarray(samples if transform is None else transform(samples))


def _read_png16(path: pathlib.Path, orientation) -> Image:
  """A 16-bit colour or gray+alpha PNG at full depth, with pypng."""
  try:
    with open(path, 'rb') as f:
      width, height, rows, info = png.Reader(file=f).asDirect()
      samples = np.array([np.asarray(row) for row in rows])
  except Exception as e:
    raise ImageError(path, f'cannot read 16-bit PNG ({type(e).__name__}: {e})') from e
  planes = info['planes']
  samples = samples.reshape(height, width, planes).astype(np.float32)
  samples = _orient(samples / np.float32(2 ** info['bitdepth'] - 1), orientation)
  gray = info['greyscale']
  rgb = np.repeat(samples[..., :1], 3, axis=2) if gray else samples[..., :3]
  alpha = samples[..., -1].copy() if info['alpha'] else None
  return Image(np.ascontiguousarray(rgb), alpha, 16 if info['bitdepth'] > 8 else 8, gray)


def _read_tiff16(path: pathlib.Path) -> Image | None:
  """A 16-bit RGB(A) TIFF's first page at full depth, with tifffile; None if not uint16 RGB(A)."""
  try:
    with tifffile.TiffFile(path) as tif:
      page = tif.pages[0]
      samples, axes = page.asarray(), page.axes
      photometric, extrasamples = page.photometric, tuple(page.extrasamples)
      orientation = page.tags[274].value if 274 in page.tags else 1
  except Exception as e:
    raise ImageError(path, f'cannot read 16-bit TIFF ({type(e).__name__}: {e})') from e
  if (samples.dtype != np.uint16 or photometric != tifffile.PHOTOMETRIC.RGB
      or sorted(axes) != ['S', 'X', 'Y'] or samples.shape[axes.index('S')] not in (3, 4)):
    return None
  samples = np.moveaxis(samples, [axes.index('Y'), axes.index('X')], [0, 1])
  samples = _orient(pixels.to_float(samples), int(orientation))
  rgb, alpha = samples[..., :3], (samples[..., 3].copy() if samples.shape[2] == 4 else None)
  if alpha is not None and extrasamples[:1] == (tifffile.EXTRASAMPLE.ASSOCALPHA,):
    rgb = np.clip(np.divide(rgb, alpha[..., None], out=np.zeros_like(rgb),
                            where=alpha[..., None] > 0), 0, 1)  # premultiplied: undo it
  return Image(np.ascontiguousarray(rgb), alpha, 16, False)


def _png16_saver(samples: np.ndarray):
  """Writes H×W×C uint16 samples (C = 2, 3, 4) as a 16-bit PNG with pypng."""
  h, w, c = samples.shape
  writer = png.Writer(w, h, greyscale=c == 2, alpha=c in (2, 4), bitdepth=16)
  big_endian = samples.astype('>u2').reshape(h, w * c)

  def save(target: str) -> None:
    with open(target, 'wb') as f:
      writer.write_packed(f, (row.tobytes() for row in big_endian))
  return save


def _tiff16_saver(samples: np.ndarray):
  """Writes H×W×C uint16 samples (C = 3, 4) as a 16-bit RGB(A) TIFF with tifffile."""
  extrasamples = ('unassalpha',) if samples.shape[2] == 4 else None

  def save(target: str) -> None:
    tifffile.imwrite(target, samples, photometric='rgb', planarconfig='contig',
                     extrasamples=extrasamples)
  return save


def _png_header(head: bytes) -> tuple[int, int]:
  """A PNG's bit depth and colour type from the first 26 bytes of the file (IHDR comes first)."""
  if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b'IHDR':
    return 8, -1
  return head[24], head[25]


def _tiff_bits_per_sample(im: PILImage.Image) -> tuple[int, ...]:
  """A TIFF's BitsPerSample tag (258); (8,) for other formats."""
  if im.format != 'TIFF':
    return (8,)
  value = im.tag_v2.get(258, 8)
  return tuple(value) if isinstance(value, (tuple, list)) else (value,)

