"""The comparison figures: zoom box choice, layout and saving (bicubic: test_pixels)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from jdsr.evaluation import figures
from jdsr.evaluation.figures import GAP

COLORS = [(255, 0, 255), (0, 255, 255), (255, 255, 0)]


def _ramp(h: int, w: int) -> np.ndarray:
  """A smooth horizontal gray ramp, H×W×3 float32 in [0.2, 0.6]."""
  return np.broadcast_to(np.linspace(0.2, 0.6, w, dtype=np.float32)[None, :, None], (h, w, 3)).copy()


def _with_patch(h: int, w: int, rows: slice, cols: slice, rgb: tuple[int, int, int]) -> np.ndarray:
  image = _ramp(h, w)
  image[rows, cols] = np.array(rgb, np.float32) / 255
  return image


def _crop_origin(figure: Image.Image, i: int, panel_w: int, crop_w: int, crop_h: int) -> tuple[int, int]:
  """(y, x) of panel i's zoom crop: the bottom row of the layout, centred in its column."""
  col_w = max(panel_w, crop_w)
  return figure.height - GAP - crop_h, GAP + i * (col_w + GAP) + (col_w - crop_w) // 2


# pick_zoom_box


@pytest.mark.parametrize('top, left', [(70, 150), (10, 20), (150, 210)])
def test_pick_zoom_box_finds_the_texture(top, left):
  image = _ramp(200, 256)  # smooth: no detail despite the changing brightness
  image[top:top + 24, left:left + 24] = np.random.default_rng(1).random((24, 24, 3))
  t, l, h, w = figures.pick_zoom_box(image, 32)
  assert (h, w) == (32, 32)
  overlap_h = min(t + h, top + 24) - max(t, top)
  overlap_w = min(l + w, left + 24) - max(l, left)
  assert overlap_h > 0 and overlap_w > 0
  assert overlap_h * overlap_w >= 24 * 24 // 2


def test_pick_zoom_box_is_clamped_and_deterministic():
  image = np.random.default_rng(2).random((20, 12, 3)).astype(np.float32)
  box = figures.pick_zoom_box(image, 64)
  t, l, h, w = box
  assert (h, w) == (12, 12) and l == 0 and 0 <= t <= 20 - 12
  assert figures.pick_zoom_box(image, 64) == box
  assert figures.pick_zoom_box(np.full((40, 40, 3), 0.5), 8) == (16, 16, 8, 8)  # flat: the centre


# side_by_side


def test_side_by_side_size_follows_the_layout():
  panels = [(f'panel {i}', _ramp(64, 80)) for i in range(3)]
  zoom = (8, 8, 16, 16)
  figure = figures.side_by_side(panels, zoom=zoom)
  assert figure.mode == 'RGB'
  assert figure.width == 3 * 80 + 4 * GAP
  assert figure.height > 64 + 2 * 16 + 3 * GAP  # panels and zoom crops, plus a label row
  titled = figures.side_by_side(panels, zoom=zoom, subtitle='0001.png')
  assert titled.width == figure.width and titled.height > figure.height
  assert figures.side_by_side(panels[:2], zoom=zoom).width == 2 * 80 + 4 * GAP - GAP
  wide = figures.side_by_side(panels, zoom=(0, 0, 40, 40), zoom_scale=3)  # crops wider than panels
  assert wide.width == 3 * 120 + 4 * GAP
  assert wide.height - figure.height == 120 - 32


def test_side_by_side_shows_each_panel_and_its_enlarged_crop():
  h, w, scale = 64, 80, 3
  rows, cols = slice(20, 26), slice(30, 35)  # the patch, inside the zoom box
  top, left, zh, zw = zoom = (16, 24, 16, 16)
  panels = [(f'panel {i}', _with_patch(h, w, rows, cols, rgb)) for i, rgb in enumerate(COLORS)]
  figure = figures.side_by_side(panels, zoom=zoom, zoom_scale=scale)
  pixels = np.asarray(figure)
  for i, rgb in enumerate(COLORS):
    y, x = _crop_origin(figure, i, w, zw * scale, zh * scale)
    patch = pixels[y + (rows.start - top) * scale:y + (rows.stop - top) * scale,
                   x + (cols.start - left) * scale:x + (cols.stop - left) * scale]
    assert patch.shape == (18, 15, 3) and (patch == rgb).all()
    assert (pixels[y + (rows.start - top) * scale - 1, x + (cols.start - left) * scale] != rgb).any()
    assert (pixels[y + (rows.start - top) * scale, x + (cols.stop - left) * scale] != rgb).any()
    # The full panel sits above the crop row, with the zoom box outlined on it.
    y_panel, x_panel = y - GAP - h, GAP + i * (w + GAP)
    assert (pixels[y_panel + rows.start, x_panel + cols.start] == rgb).all()
    assert (pixels[y_panel + top, x_panel + left + zw // 2] == figures.BOX_COLOR).all()
    assert (pixels[y_panel + top + zh // 2, x_panel + left + zw - 1] == figures.BOX_COLOR).all()
    # Its label is drawn above it.
    assert (pixels[GAP:y_panel, x_panel:x_panel + w] != figures.BACKGROUND).any(axis=-1).sum() > 10


def test_side_by_side_default_zoom_is_picked_on_the_last_panel():
  image = _ramp(96, 128)
  target = image.copy()
  target[50:70, 90:110] = np.random.default_rng(3).random((20, 20, 3))
  panels = [('bicubic', image), ('ground truth', target)]
  box = figures.pick_zoom_box(target, 32)  # min(96, 128) // 4 = 24, raised to 32
  assert np.array_equal(np.asarray(figures.side_by_side(panels)),
                        np.asarray(figures.side_by_side(panels, zoom=box)))
  assert not np.array_equal(np.asarray(figures.side_by_side(panels)),
                            np.asarray(figures.side_by_side(panels, zoom=(0, 0, 32, 32))))


def test_side_by_side_downscales_large_panels_but_not_the_crops():
  h, w = 300, 1200
  rows, cols = slice(110, 120), slice(110, 125)
  top, left, zh, zw = zoom = (100, 100, 40, 40)
  panels = [(f'panel {i}', _with_patch(h, w, rows, cols, rgb)) for i, rgb in enumerate(COLORS)]
  figure = figures.side_by_side(panels, zoom=zoom)
  panel_w = (figures.MAX_WIDTH - 4 * GAP) // 3
  assert figure.width == 3 * panel_w + 4 * GAP <= figures.MAX_WIDTH
  pixels = np.asarray(figure)
  for i, rgb in enumerate(COLORS):
    y, x = _crop_origin(figure, i, panel_w, 2 * zw, 2 * zh)
    patch = pixels[y + (rows.start - top) * 2:y + (rows.stop - top) * 2,
                   x + (cols.start - left) * 2:x + (cols.stop - left) * 2]
    assert patch.shape == (20, 30, 3) and (patch == rgb).all()


def test_side_by_side_rejects_bad_panels_and_boxes():
  with pytest.raises(ValueError, match=r'\(64, 80, 3\).*\(64, 81, 3\)'):
    figures.side_by_side([('a', _ramp(64, 80)), ('b', _ramp(64, 81))])
  with pytest.raises(ValueError, match=r'\(64, 80, 4\)'):
    figures.side_by_side([('a', np.zeros((64, 80, 4)))])
  with pytest.raises(ValueError, match='zoom box'):
    figures.side_by_side([('a', _ramp(64, 80))], zoom=(50, 0, 32, 32))
  with pytest.raises(ValueError):
    figures.side_by_side([])


# save_figure


def test_save_figure_writes_a_png_atomically(tmp_path):
  image = figures.side_by_side([('a', _ramp(40, 48)), ('b', _ramp(40, 48)[::-1])], zoom=(0, 0, 16, 16))
  path = tmp_path / 'figures' / 'val' / '0001.png'
  figures.save_figure(path, image)
  assert sorted(os.listdir(path.parent)) == ['0001.png']
  with Image.open(path) as saved:
    assert saved.format == 'PNG'
    assert np.array_equal(np.asarray(saved.convert('RGB')), np.asarray(image))
  figures.save_figure(str(path), image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))  # overwrites
  with Image.open(path) as saved:
    assert np.array_equal(np.asarray(saved), np.asarray(image)[:, ::-1])
  assert sorted(os.listdir(path.parent)) == ['0001.png']


def test_save_figure_cleans_up_on_error(tmp_path):
  path = tmp_path / 'fig.png'
  path.write_bytes(b'old')
  with pytest.raises(OSError):
    figures.save_figure(path, Image.new('F', (4, 4)))  # PNG has no float mode
  assert path.read_bytes() == b'old'
  assert os.listdir(tmp_path) == ['fig.png']
