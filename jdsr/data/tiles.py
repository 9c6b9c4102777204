"""Images stored as a grid of PNG tiles, so that a crop decodes only the tiles it covers.

A training sample uses a 64×64 LR crop (256×256 HR) of a 320×180 (1280×720)
REDS frame: 7% of it. Decoding the whole HR PNG costs about 25 ms; decoding
the at most 3×3 tiles of 128×128 that a 256×256 crop covers costs about 4 ms,
and the files grow by a few percent (each tile's PNG filters and compresses
without its neighbours).

A tiled image is its (height, width) and the PNG bytes of its tiles in row-major
order: tile (r, c) holds rows ``r·tile … (r+1)·tile`` and columns ``c·tile …``,
the last row and column of tiles smaller where the size is not a multiple of
``tile``. Lossless: ``decode`` of the whole image gives back the pixels
``encode`` was given. NumPy and Pillow only (Pillow decodes without the GIL).
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image


def grid(height: int, width: int, tile: int) -> tuple[int, int]:
  """(rows, columns) of tiles of an image of ``height × width``."""
  return -(-height // tile), -(-width // tile)


def encode(image: np.ndarray, tile: int) -> list[bytes]:
  """The PNG bytes of each ``tile × tile`` tile of an H×W×3 uint8 image, row-major."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f'tiles are of H×W×3 uint8 images, got {image.dtype} {image.shape}')
  rows, cols = grid(*image.shape[:2], tile)
  out = []
  for r in range(rows):
    for c in range(cols):
      buffer = io.BytesIO()
      Image.fromarray(image[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile]).save(buffer, 'PNG')
      out.append(buffer.getvalue())
  return out


def decode(tiles: Sequence[bytes], shape: tuple[int, int], tile: int, top: int = 0, left: int = 0,
           height: int | None = None, width: int | None = None) -> np.ndarray:
  """The ``height × width × 3`` region at (top, left) of a tiled image of ``shape``, decoding only its tiles.

  ``height``/``width`` default to the rest of the image. A region outside the
  image, or a tile list of the wrong length, is a ValueError.
  """
  full_h, full_w = shape
  height = full_h - top if height is None else height
  width = full_w - left if width is None else width
  if top < 0 or left < 0 or height <= 0 or width <= 0 or top + height > full_h or left + width > full_w:
    raise ValueError(f'region ({top}, {left}) + {height}×{width} is not inside the {full_h}×{full_w} '
                     'image')
  rows, cols = grid(full_h, full_w, tile)
  if len(tiles) != rows * cols:
    raise ValueError(f'a {full_h}×{full_w} image in tiles of {tile} has {rows * cols} tiles, '
                     f'got {len(tiles)}')
  out = np.empty((height, width, 3), np.uint8)
  for r in range(top // tile, (top + height - 1) // tile + 1):
    for c in range(left // tile, (left + width - 1) // tile + 1):
      pixels = np.asarray(Image.open(io.BytesIO(tiles[r * cols + c])).convert('RGB'))
      y0, x0 = max(top, r * tile), max(left, c * tile)  # the overlap, in image coordinates
      y1, x1 = min(top + height, (r + 1) * tile), min(left + width, (c + 1) * tile)
      out[y0 - top:y1 - top, x0 - left:x1 - left] = pixels[y0 - r * tile:y1 - r * tile,
                                                          x0 - c * tile:x1 - c * tile]
  return out
