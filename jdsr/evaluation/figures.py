"""Side-by-side comparison figures, for looking at results rather than reading them.

The evaluation and restoration tools write one figure per image::

  [subtitle]
  bicubic 23.85 dB     ours 27.62 dB     ground truth
  +-------------+     +-------------+     +-------------+
  |   [box]     |     |   [box]     |     |   [box]     |   full panels, the zoom
  +-------------+     +-------------+     +-------------+   box outlined on each
     +-------+           +-------+           +-------+
     | zoom  |           | zoom  |           | zoom  |      the box's crop, enlarged
     +-------+           +-------+           +-------+      with nearest-neighbour

The "bicubic" panel is the blurry low-resolution input upscaled by
``jdsr.io.pixels.upscale`` (Pillow's bicubic in float mode, clipped), the
baseline of the metric tables too.

* ``pick_zoom_box``: the square crop with the most detail (the largest sum of
  the absolute Laplacian of the grayscale image).
* ``side_by_side``: the figure itself, a ``PIL.Image.Image``.
* ``save_figure``: writes it as a PNG atomically (``jdsr.io.files.atomic_write``).

Images are H×W×3 float arrays in [0, 1]; they are shown quantised to 8 bits
by ``jdsr.io.pixels.quantize``.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jdsr.io import files, pixels

Box = tuple[int, int, int, int]  # (top, left, height, width)

GAP = 8  # pixels between panels and rows, and around the figure
LABEL_PAD = 4  # pixels between a label and its panel
MAX_WIDTH = 3000  # wider figures get their full panels downscaled
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (20, 20, 20)
BOX_COLOR = (255, 40, 40)
BOX_LINE = 2  # outline width of the zoom box


def pick_zoom_box(image: np.ndarray, size: int) -> Box:
  """(top, left, height, width) of the square of side ``min(size, H, W)`` with the most detail.

  Detail is the sum of the absolute 4-neighbour Laplacian of the grayscale
  image over the square (smooth gradients score nothing). Candidate squares
  lie on a grid of stride side/8, plus the last row and column; each sum
  costs O(1) through a summed-area table. Of equally good squares, the one
  nearest the image centre wins, so a flat image gives the centre.
  """
  image = np.asarray(image, np.float64)
  if image.ndim not in (2, 3):
    raise ValueError(f'expected an H×W or H×W×C image, got shape {image.shape}')
  if size < 1:
    raise ValueError(f'size must be at least 1, got {size}')
  gray = image.mean(axis=2) if image.ndim == 3 else image
  h, w = gray.shape
  side = min(size, h, w)
  p = np.pad(gray, 1, mode='edge')
  detail = np.abs(4 * gray - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:])
  sat = np.zeros((h + 1, w + 1))
  sat[1:, 1:] = detail.cumsum(0).cumsum(1)
  stride = max(1, side // 8)
  tops = np.unique(np.r_[np.arange(0, h - side + 1, stride), h - side])[:, None]
  lefts = np.unique(np.r_[np.arange(0, w - side + 1, stride), w - side])[None, :]
  scores = (sat[tops + side, lefts + side] - sat[tops, lefts + side]
            - sat[tops + side, lefts] + sat[tops, lefts])
  best = scores >= scores.max() - 1e-9 * (sat[-1, -1] + 1)  # ties, up to rounding
  off_centre = (tops + side / 2 - h / 2) ** 2 + (lefts + side / 2 - w / 2) ** 2
  i, j = np.unravel_index(np.argmin(np.where(best, off_centre, np.inf)), scores.shape)
  return int(tops[i, 0]), int(lefts[0, j]), side, side


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
  try:
    return ImageFont.load_default(size=size)  # scalable in Pillow >= 10.1
  except (TypeError, OSError):  # older Pillow, or no FreeType: the fixed bitmap font
    return ImageFont.load_default()


def side_by_side(panels: Sequence[tuple[str, np.ndarray]], *, zoom: Box | None = None, zoom_scale: int = 2,
                 subtitle: str | None = None) -> Image.Image:
  """The panels left to right, each labelled above and with its zoom crop below.

  ``panels`` are (label, H×W×3 float image in [0, 1]) pairs of one shape, e.g.
  [('bicubic 23.85 dB', up), ('ours 27.62 dB', out), ('ground truth', gt)].
  ``zoom`` is the (top, left, height, width) box, outlined on every panel and
  shown below it enlarged ``zoom_scale`` times with nearest-neighbour; by
  default ``pick_zoom_box`` on the last panel with side min(H, W)//4 (at least
  32, at most the image). Figures wider than ``MAX_WIDTH`` get their full
  panels, not the zoom crops, downscaled. ``subtitle`` (e.g. the image name)
  is a line at the top.
  """
  if not panels:
    raise ValueError('side_by_side needs at least one panel')
  images = [np.asarray(image, np.float32) for _, image in panels]
  shapes = [image.shape for image in images]
  if len(set(shapes)) != 1 or len(shapes[0]) != 3 or shapes[0][2] != 3:
    raise ValueError(f'panels must all be H×W×3 images of one shape, got shapes {shapes}')
  if zoom_scale < 1:
    raise ValueError(f'zoom_scale must be at least 1, got {zoom_scale}')
  h, w, _ = shapes[0]
  if zoom is None:
    zoom = pick_zoom_box(images[-1], max(min(h, w) // 4, 32))
  top, left, zh, zw = zoom
  if not (0 <= top and 0 <= left and 0 < zh and 0 < zw and top + zh <= h and left + zw <= w):
    raise ValueError(f'zoom box {zoom} (top, left, height, width) is not inside the {h}×{w} panels')

  n = len(images)
  crop_w, crop_h = zw * zoom_scale, zh * zoom_scale
  panel_w, panel_h = w, h
  if n * max(w, crop_w) + (n + 1) * GAP > MAX_WIDTH:
    panel_w = max(1, min(w, (MAX_WIDTH - (n + 1) * GAP) // n))
    panel_h = max(1, round(h * panel_w / w))
  col_w = max(panel_w, crop_w)
  font = _font(max(14, min(32, col_w // 24)))
  line_h = font.getbbox('Ag|')[3]

  y_subtitle = GAP
  y_label = y_subtitle + (line_h + GAP if subtitle else 0)
  y_panel = y_label + line_h + LABEL_PAD
  y_crop = y_panel + panel_h + GAP
  figure = Image.new('RGB', (n * col_w + (n + 1) * GAP, y_crop + crop_h + GAP), BACKGROUND)
  draw = ImageDraw.Draw(figure)
  if subtitle:
    draw.text((GAP, y_subtitle), subtitle, fill=TEXT_COLOR, font=font)

  sy, sx = panel_h / h, panel_w / w  # the outline's coordinates on a downscaled panel
  x0, y0 = round(left * sx), round(top * sy)
  outline = [x0, y0, max(x0, round((left + zw) * sx) - 1), max(y0, round((top + zh) * sy) - 1)]
  for i, ((label, _), image) in enumerate(zip(panels, images)):
    x = GAP + i * (col_w + GAP)
    text_w = font.getbbox(label)[2]
    draw.text((x + max(0, (col_w - text_w) // 2), y_label), label, fill=TEXT_COLOR, font=font)

    panel = Image.fromarray(pixels.quantize(image))
    crop = panel.crop((left, top, left + zw, top + zh)).resize((crop_w, crop_h), Image.Resampling.NEAREST)
    if (panel_w, panel_h) != (w, h):
      panel = panel.resize((panel_w, panel_h), Image.Resampling.LANCZOS)
    ImageDraw.Draw(panel).rectangle(outline, outline=BOX_COLOR, width=BOX_LINE)
    x_panel, x_crop = x + (col_w - panel_w) // 2, x + (col_w - crop_w) // 2
    figure.paste(panel, (x_panel, y_panel))
    figure.paste(crop, (x_crop, y_crop))
    # A frame just outside the crop, in the outline's colour, ties the two together.
    draw.rectangle([x_crop - 1, y_crop - 1, x_crop + crop_w, y_crop + crop_h], outline=BOX_COLOR, width=1)
  return figure


def save_figure(path: str | os.PathLike, image: Image.Image) -> None:
  """Writes ``image`` to ``path`` as a PNG with ``jdsr.io.files.atomic_write``.

  Parent folders are created; on error ``path`` is untouched and no temporary file is left.
  """
  files.atomic_write(path, lambda tmp: image.save(tmp, format='PNG'))
