"""Restoring any image: padding, tiling, grayscale and alpha around the network.

``restore(model, image)`` takes a float image in [0, 1] of any size, H×W
(grayscale), H×W×1, H×W×3 or H×W×4 (RGBA), and returns the deblurred image at
4× the size in the same layout:

* The image is reflect-padded at the bottom and right to a multiple of
  ``BUCKET`` pixels (the network needs multiples of 8; rounding up further
  means that images of similar sizes share one compiled program), and the
  output is cropped back. A 1×1 image works too.
* Grayscale is replicated to RGB and the output averaged back to one channel;
  an alpha channel is upscaled separately with bicubic interpolation.
* Large images are cut into overlapping tiles of ``tile``×``tile`` input
  pixels, each restored alone (all tiles have one shape: one compilation) and
  blended with linear ramps over the overlap, so that memory stays bounded
  whatever the image size. By default (``tile=None``) images larger than
  ``DEFAULT_TILE`` in either dimension are tiled; ``tile=0`` never tiles.

The settings (TLSC, self-ensemble, tiling, runtime) travel as one ``Options``
object, from ``eval.py``'s config (``Options.from_config``) to ``restore``.
``Options.runtime`` runs the network in JAX or in a CPU inference runtime
(``jdsr.inference.runtimes``): ``restore`` takes the ``Engine`` that
``Options.model`` makes wherever it takes a model, and does the same around it.

Tiling and TLSC: TLSC replaces each global pool by a local mean over a fixed
window (at most 96×96 pixels at the input's scale, less in the deeper
layers), clamped to the feature. Inside a tile of at least that size the
window is the same as in the whole image, so tiles only differ from a
whole-image pass within about one window of the tile borders, and the ramps
blend those seams. Without TLSC, each tile's channel attention sees the mean
of its own tile instead of the whole image's: tiles of 256 pixels or more keep
that difference small, and TLSC (the paper's Model-3) removes it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from typing import Callable

import ml_collections
import numpy as np

from jdsr.inference import forward, runtimes
from jdsr.nn import layers
from jdsr.io import imagefile, pixels
from jdsr.nn.model import JDSR, with_compute

SCALE = 4
BUCKET = 32
DEFAULT_TILE = 256
DEFAULT_OVERLAP = 32
DEFAULT_MAX_OUTPUT_MEGAPIXELS = 256.0  # a 4000×4000 input


@dataclasses.dataclass(frozen=True)
class Options:
  """How to restore an image.

  ``tlsc``: the TLSC settings (the paper's by default), or None for plain
  global pooling. ``ensemble``: average the ×8 self-ensemble. ``tile``: the
  input tile size (a multiple of 8), None for automatic (tiles of
  ``DEFAULT_TILE`` for larger images), 0 for never. ``overlap``: input
  pixels shared by neighbouring tiles (0: tiles are averaged, not blended).
  ``max_output_megapixels``: a larger output is refused up front (it would
  not fit in memory: 12 bytes per output pixel, and more while blending).
  ``dtype``: the convolutions' dtype, 'float32' or 'bfloat16' (the model
  config's ``dtype``), None for the model's own (JAX) or the runtime's default
  (OpenVINO: bfloat16 where the CPU has it). ``runtime``: 'jax', 'onnxruntime'
  or 'openvino' (``jdsr.inference.runtimes``); ``cache_dir``: where the
  runtimes' ONNX files are cached (None: ``runtimes.default_cache_dir()``).
  ``outscale``: the output files' scale of the input, the ×4 image resized
  (Lanczos) to it where it is not 4 (Real-ESRGAN's ``--outscale``); images only.
  """
  tlsc: layers.TLSC | None = layers.TLSC()
  ensemble: bool = False
  tile: int | None = None
  overlap: int = DEFAULT_OVERLAP
  max_output_megapixels: float = DEFAULT_MAX_OUTPUT_MEGAPIXELS
  dtype: str | None = None
  runtime: str = 'jax'
  cache_dir: str | None = None
  outscale: float = float(SCALE)

  def __post_init__(self):
    if not (isinstance(self.outscale, (int, float)) and 0 < self.outscale <= 16):
      raise ValueError(f'outscale must be above 0 and at most 16, got {self.outscale!r}')
    if self.runtime not in runtimes.RUNTIMES:
      raise ValueError(f'runtime must be one of {runtimes.RUNTIMES}, got {self.runtime!r}')
    limit = self.max_output_megapixels
    if not (isinstance(limit, (int, float)) and math.isfinite(limit) and limit > 0):
      raise ValueError(f'max_output_megapixels must be a finite number above 0, got {limit!r}')

  def check_size(self, height: int, width: int) -> None:
    """Raises ``OutputTooLarge`` if an input of this size gives more than ``max_output_megapixels``.

    ``imagefile.read_image(path, check_size=options.check_size)`` applies it to the
    file's header, before anything is decoded.
    """
    megapixels = SCALE * SCALE * height * width / 1e6
    if megapixels > self.max_output_megapixels:
      raise OutputTooLarge(f'the output would be {SCALE * width}x{SCALE * height} '
                           f'({megapixels:,.1f} megapixels), more than the limit of '
                           f'{self.max_output_megapixels:,.1f}')

  def model(self, model: JDSR | runtimes.Engine,
            announce: Callable[[str], None] | None = None) -> JDSR | runtimes.Engine:
    """What ``restore`` runs: ``model`` computing in ``dtype``, in ``runtime``.

    For 'jax', the model (itself if it already computes in ``dtype``); for a
    runtime, its ``Engine`` (the ONNX file made or taken from the cache;
    ``announce(message)`` is told when it is made). An engine passes through
    if it matches these options.
    """
    if isinstance(model, runtimes.Engine):
      if model.runtime != self.runtime or model.tlsc != self.tlsc:
        raise ValueError(f'an engine for {model.runtime} (TLSC {model.tlsc}) does not match '
                         f'these options ({self.runtime}, TLSC {self.tlsc})')
      return model
    if self.runtime != 'jax':
      return runtimes.engine(model, self.runtime, tlsc=self.tlsc, dtype=self.dtype,
                             cache_dir=self.cache_dir, announce=announce)
    return model if self.dtype is None else with_compute(model, dtype=self.dtype)

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> Options:
    """From an eval config's ``tlsc``, ``tlsc_base_size``, ``tlsc_train_size``, ``ensemble``, ``tile``, ``dtype``."""
    tlsc = (layers.TLSC(base_size=(config.tlsc_base_size,) * 2,
                        train_size=(config.tlsc_train_size,) * 2) if config.tlsc else None)
    return cls(tlsc=tlsc, ensemble=config.ensemble, tile=config.tile,
               max_output_megapixels=config.max_output_megapixels, dtype=config.dtype,
               runtime=config.get('runtime', 'jax'), cache_dir=config.get('cache_dir') or None)


class OutputTooLarge(ValueError):
  """The output would exceed ``Options.max_output_megapixels`` (refused before any work)."""


@dataclasses.dataclass(frozen=True)
class Progress:
  """What ``restore`` reports while it works (each callback may be None).

  ``compiling(height, width)``: the model is about to be compiled for input
  tiles of that size (the first time a size is met in this process; tens of
  seconds). ``tiles(done, total)``: after each tile of a tiled image.
  """
  compiling: Callable[[int, int], None] | None = None
  tiles: Callable[[int, int], None] | None = None


def restore(model: JDSR | runtimes.Engine, image: np.ndarray, options: Options = Options(),
            progress: Progress = Progress()) -> np.ndarray:
  """The restored, ×4 image (float32 in [0, 1]), in the layout of ``image`` (see ``Options``)."""
  model = options.model(model)
  image = np.asarray(image)
  squeeze = image.ndim == 2
  if squeeze:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or 0 in image.shape:
    raise ValueError(f'expected an H×W, H×W×1, H×W×3 or H×W×4 image, got shape {image.shape}')
  if not np.issubdtype(image.dtype, np.floating):
    raise ValueError(f'expected a float image in [0, 1], got dtype {image.dtype} '
                     '(divide uint8 images by 255, 16-bit ones by 65535)')
  image = _checked_values(image.astype(np.float32))
  channels = image.shape[-1]
  rgb = np.repeat(image, 3, axis=-1) if channels == 1 else image[..., :3]
  h, w = rgb.shape[:2]
  options.check_size(h, w)
  tile, overlap = options.tile, options.overlap
  if overlap < 0:
    raise ValueError(f'overlap must be 0 or more, got {overlap}')
  if tile is None:
    tile = DEFAULT_TILE if max(h, w) > DEFAULT_TILE else 0
  if tile and (tile % 8 or tile <= overlap):
    raise ValueError(f'tile must be a multiple of 8 larger than overlap ({overlap}), got {tile}')
  if tile and max(h, w) > tile:
    out = _tiled(model, rgb, options, tile, progress)
  else:
    out = _whole(model, rgb, options, progress)
  if not np.isfinite(out).all():
    raise ValueError("the model's output is NaN or inf: its weights are broken (a diverged "
                     'training run?)')
  out = np.clip(out, 0.0, 1.0)

  if channels == 1:
    out = out.mean(axis=-1, keepdims=True)
    return out[..., 0] if squeeze else out
  if channels == 4:
    return np.concatenate([out, pixels.upscale(image[..., 3], SCALE)[..., None]], axis=-1)
  return out


def restore_file(model: JDSR | runtimes.Engine, source: str | os.PathLike,
                 target: str | os.PathLike, options: Options = Options(),
                 progress: Progress = Progress()) -> tuple[imagefile.Image, np.ndarray]:
  """Restores the image file ``source`` into ``target``, in the source's layout.

  What ``jdsr-restore`` and ``jdsr-app`` write: the size is checked from the
  header before anything is decoded (``Options.check_size``); gray, alpha and bit
  depth are kept (``jdsr.io.imagefile``). Returns the decoded source and the
  restored ×4 RGB image (float32 in [0, 1]), for previews.
  """
  image = imagefile.read_image(source, check_size=options.check_size)
  sr = restore(model, image.rgb, options, progress)
  alpha = None if image.alpha is None else pixels.upscale(image.alpha, SCALE)
  written = sr
  if options.outscale != SCALE:
    h, w = image.rgb.shape[:2]
    size = (max(int(h * options.outscale), 1), max(int(w * options.outscale), 1))
    written = np.clip(pixels.resize_lanczos(sr, size), 0, 1)
    alpha = None if alpha is None else np.clip(pixels.resize_lanczos(alpha, size), 0, 1)
  imagefile.write_image(target, written, alpha, bits=image.bits, gray=image.gray)
  return image, sr


def _checked_values(image: np.ndarray) -> np.ndarray:
  """Warn about pixels that are not in [0, 1]: NaN or inf (replaced), or 8/16-bit values as floats."""
  if not np.isfinite(image).all():
    warnings.warn(f'the image has {np.size(image) - np.isfinite(image).sum():,} NaN or inf '
                  'values: restoring with NaN as 0 and inf as 0 or 1', stacklevel=3)
    image = np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)
  if image.max() > 1.01 or image.min() < -0.01:
    warnings.warn(f'the image has values in [{image.min():g}, {image.max():g}], expected [0, 1] '
                  '(divide 8-bit images by 255, 16-bit ones by 65535: see jdsr.io.pixels.to_float)',
                  stacklevel=3)
  return image


def _whole(model: JDSR, rgb: np.ndarray, options: Options, progress: Progress,
           bucket: int = BUCKET) -> np.ndarray:
  """One forward pass over the image padded to a multiple of ``bucket``, cropped back."""
  h, w = rgb.shape[:2]
  ph, pw = -(-h // bucket) * bucket, -(-w // bucket) * bucket
  x = np.pad(rgb, ((0, ph - h), (0, pw - w), (0, 0)), mode='reflect')[None]
  if isinstance(model, runtimes.Engine):
    sr = model.self_ensemble(x) if options.ensemble else model(x)
    return np.asarray(sr[0, :SCALE * h, :SCALE * w])
  if progress.compiling and forward.first_call(model, x.shape, options.tlsc, options.ensemble):
    progress.compiling(ph, pw)
  if options.ensemble:
    _, sr = forward.self_ensemble(model, x, tlsc=options.tlsc)
  else:
    _, sr = forward.apply(model, x, tlsc=options.tlsc)
  return np.asarray(sr[0, :SCALE * h, :SCALE * w])


def _starts(size: int, tile: int, overlap: int) -> list[int]:
  """Tile origins covering [0, size) with at least ``overlap`` shared pixels."""
  if size <= tile:
    return [0]
  n = -(-(size - overlap) // (tile - overlap))
  return sorted({round(i * (size - tile) / (n - 1)) for i in range(n)})


def _ramp(length: int, fade: int, start: bool, end: bool) -> np.ndarray:
  """1-D blending weight: rising over ``fade`` pixels at inner edges, 1 elsewhere."""
  ramp = np.ones(length, np.float32)
  if not fade:
    return ramp
  steps = (np.arange(fade, dtype=np.float32) + 0.5) / fade
  if start:
    ramp[:fade] = steps
  if end:
    ramp[-fade:] = np.minimum(ramp[-fade:], steps[::-1])
  return ramp


def _tiled(model: JDSR, rgb: np.ndarray, options: Options, tile: int,
           progress: Progress) -> np.ndarray:
  h, w = rgb.shape[:2]
  overlap = options.overlap
  if min(h, w) < tile:  # pad the short side up to one tile
    rgb = np.pad(rgb, ((0, max(tile - h, 0)), (0, max(tile - w, 0)), (0, 0)), mode='reflect')
  ys, xs = _starts(rgb.shape[0], tile, overlap), _starts(rgb.shape[1], tile, overlap)
  out = np.zeros((SCALE * rgb.shape[0], SCALE * rgb.shape[1], 3), np.float32)
  weight = np.zeros(out.shape[:2] + (1,), np.float32)
  size, fade = SCALE * tile, SCALE * overlap
  done = 0
  for y in ys:
    wy = _ramp(size, fade, y > 0, y + tile < rgb.shape[0])
    for x in xs:
      wx = _ramp(size, fade, x > 0, x + tile < rgb.shape[1])
      patch = _whole(model, rgb[y:y + tile, x:x + tile], options, progress, bucket=8)
      wgt = (wy[:, None] * wx[None, :])[..., None]
      out[SCALE * y:SCALE * y + size, SCALE * x:SCALE * x + size] += wgt * patch
      weight[SCALE * y:SCALE * y + size, SCALE * x:SCALE * x + size] += wgt
      done += 1
      if progress.tiles:
        progress.tiles(done, len(ys) * len(xs))
  return (out / weight)[:SCALE * h, :SCALE * w]
