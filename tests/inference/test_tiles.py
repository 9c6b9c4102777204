"""Images as PNG tiles (jdsr.data.tiles): lossless, and any region decodes to the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

from jdsr.data import tiles


@pytest.mark.parametrize('shape, tile', [((45, 70), 16), ((32, 32), 16), ((10, 7), 32)])
def test_any_region_is_the_slice(shape, tile):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
  encoded = tiles.encode(image, tile)
  assert len(encoded) == np.prod(tiles.grid(*shape, tile))
  np.testing.assert_array_equal(tiles.decode(encoded, shape, tile), image)
  for _ in range(20):
    top, left = rng.integers(0, shape[0]), rng.integers(0, shape[1])
    h, w = rng.integers(1, shape[0] - top + 1), rng.integers(1, shape[1] - left + 1)
    np.testing.assert_array_equal(tiles.decode(encoded, shape, tile, top, left, h, w),
                                  image[top:top + h, left:left + w])


def test_bad_input_is_an_error():
  image = np.zeros((20, 20, 3), np.uint8)
  encoded = tiles.encode(image, 8)
  with pytest.raises(ValueError, match='not inside'):
    tiles.decode(encoded, (20, 20), 8, 10, 10, 11, 5)
  with pytest.raises(ValueError, match='has 9 tiles, got 8'):
    tiles.decode(encoded[:8], (20, 20), 8)
  with pytest.raises(ValueError, match='uint8'):
    tiles.encode(image.astype(np.float32), 8)
