"""The REDS dataset on disk: locating its folders and pairing its frames.

REDS comes as zips that extract to the official layout, for example::

  val_blur_bicubic/val/val_blur_bicubic/X4/000/00000000.png  blurry LR, 320×180
  val_sharp/val/val_sharp/000/00000000.png                    sharp HR, 1280×720
  train_sharp_bicubic/train/train_sharp_bicubic/X4/000/...    sharp LR
  val_sharp_bicubic/val/val_sharp_bicubic/X4/000/...          sharp LR of the validation set

Zips extracted one level shallower (``val_blur_bicubic/X4/000/...``,
``val_sharp/000/...``) are accepted too: ``find_dir`` locates the folder that
holds the sequence folders. 240 training (000–239) and 30 validation (000–029)
sequences of 100 frames (00000000–00000099); a frame's id is
``SSS_FFFFFFFF``. Val300 is frames 9, 19, …, 99 of every validation sequence.

* ``list_frames``: the matched (blur LR, sharp HR[, sharp LR]) paths, sorted by
  id; any frame without its counterpart is an error.
* ``crop_like_reference``: the reference's evaluation crop to a multiple of 8.
* ``write_fake_reds``: a tiny fake tree of random PNGs for tests and examples.

NumPy, Pillow and the standard library only.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Iterable

import numpy as np
from PIL import Image

SPLITS = ('train', 'val')
KINDS = ('blur_bicubic', 'sharp', 'sharp_bicubic')
SUBSETS = ('val300',)
EXPECTED = {'train': 24000, 'val': 3000, 'val300': 300}
VAL300_FRAMES = tuple(range(9, 100, 10))
SCALE = 4
LR_SIZE = (180, 320)  # (height, width)
HR_SIZE = (720, 1280)
LR_ROWS = slice(2, 178)  # the reference's crop to a multiple of 8: 176 rows
HR_ROWS = slice(8, 712)  # 704 rows
MAX_LISTED = 10

_NAMES = {'blur_bicubic': 'blur LR', 'sharp': 'sharp HR', 'sharp_bicubic': 'sharp LR'}

PathLike = str | os.PathLike


@dataclasses.dataclass(frozen=True)
class Frame:
  """One REDS frame: its id ('SSS_FFFFFFFF') and the paths of its images."""
  id: str
  blur_lr: pathlib.Path
  sharp_hr: pathlib.Path
  sharp_lr: pathlib.Path | None = None


class REDSError(ValueError):
  """REDS is not where, or not what, it was expected to be."""


def _check(name: str, value: str, allowed: Iterable[str]) -> None:
  allowed = tuple(allowed)
  if value not in allowed:
    raise REDSError(f'{name} must be one of {allowed}, got {value!r}')


def candidate_dirs(root: PathLike, kind: str, split: str) -> list[pathlib.Path]:
  """The folders that may hold the sequence folders of ``{split}_{kind}``, deep layout first."""
  _check('kind', kind, KINDS)
  _check('split', split, SPLITS)
  top = pathlib.Path(root) / f'{split}_{kind}'
  deep = top / split / f'{split}_{kind}'
  if kind == 'sharp':  # HR frames: no X4 folder
    return [deep, top]
  return [deep / f'X{SCALE}', top / f'X{SCALE}']


def find_dir(root: PathLike, kind: str, split: str) -> pathlib.Path:
  """The folder holding the sequence folders (000, 001, …) of ``{split}_{kind}``.

  ``kind`` is 'blur_bicubic', 'sharp' or 'sharp_bicubic'; ``split`` is 'train'
  or 'val'. Tries the official layout, then the one a level shallower; raises
  ``REDSError`` listing the paths tried if neither exists.
  """
  tried = candidate_dirs(root, kind, split)
  for path in tried:
    if path.is_dir():
      return path
  listed = '\n  '.join(str(p) for p in tried)
  raise REDSError(f'REDS {split}_{kind} not found under {root}; tried:\n  {listed}')


def has_sharp_lr(root: PathLike, split: str) -> bool:
  """Whether ``{split}_sharp_bicubic`` (the sharp LR frames) was downloaded under ``root``."""
  return any(path.is_dir() for path in candidate_dirs(root, 'sharp_bicubic', split))


def _scan(directory: pathlib.Path) -> dict[str, pathlib.Path]:
  """{'SSS_FFFFFFFF': path} for every directory/SSS/FFFFFFFF.png."""
  return {f'{seq.name}_{png.stem}': png
          for seq in directory.iterdir() if seq.is_dir()
          for png in seq.glob('*.png') if png.is_file()}


def _in_val300(frame_id: str) -> bool:
  frame = frame_id.rpartition('_')[2]
  return frame.isdigit() and int(frame) in VAL300_FRAMES


def _expected_path(directory: pathlib.Path, frame_id: str) -> pathlib.Path:
  seq, _, frame = frame_id.rpartition('_')
  return directory / seq / f'{frame}.png'


def _raise_problems(problems: list[str], what: str) -> None:
  if not problems:
    return
  shown = problems[:MAX_LISTED]
  more = len(problems) - len(shown)
  tail = f'; and {more} more' if more else ''
  plural = 's' if len(problems) > 1 else ''
  # One line (the commands print the first line of an error): the frames named, then a count.
  raise REDSError(f'{len(problems)} unmatched frame{plural} in {what}: ' + '; '.join(shown) + tail)


def list_frames(root: PathLike, split: str = 'val', subset: str | None = None,
                with_sharp_lr: bool = False, strict_count: bool = False) -> list[Frame]:
  """Every REDS frame of ``split`` under ``root`` with its counterparts, sorted by id.

  ``subset='val300'`` (split 'val' only) keeps frames 9, 19, …, 99 of each
  sequence. ``with_sharp_lr`` also pairs the phase-1 target, the sharp LR
  frame (``{split}_sharp_bicubic``; ``has_sharp_lr`` says whether it is there).
  A frame found in one folder but not in another, or a folder without frames,
  raises ``REDSError`` (naming up to ``MAX_LISTED`` frames). With
  ``strict_count`` a count other than ``EXPECTED[subset or split]`` raises too.
  """
  _check('split', split, SPLITS)
  if subset is not None:
    _check('subset', subset, SUBSETS)
    if split != 'val':
      raise REDSError(f'subset {subset!r} is a subset of split \'val\', not {split!r}')
  kinds = ('blur_bicubic', 'sharp') + (('sharp_bicubic',) if with_sharp_lr else ())
  dirs = {kind: find_dir(root, kind, split) for kind in kinds}
  found = {}
  for kind, directory in dirs.items():
    frames = _scan(directory)
    if subset == 'val300':
      frames = {k: v for k, v in frames.items() if _in_val300(k)}
    if not frames:
      which = f'{subset} frames' if subset else 'frames'
      raise REDSError(f'no {which} (SSS/FFFFFFFF.png) in {directory}')
    found[kind] = frames

  all_ids = sorted(set().union(*found.values()))
  problems = [f'no {_NAMES[kind]} for {frame_id}: expected {_expected_path(dirs[kind], frame_id)}'
              for frame_id in all_ids for kind in kinds if frame_id not in found[kind]]
  _raise_problems(problems, f'REDS {split} under {root}')

  frames = [Frame(id=frame_id, blur_lr=found['blur_bicubic'][frame_id],
                  sharp_hr=found['sharp'][frame_id],
                  sharp_lr=found['sharp_bicubic'][frame_id] if with_sharp_lr else None)
            for frame_id in all_ids]
  name = subset or split
  if strict_count and len(frames) != EXPECTED[name]:
    raise REDSError(f'found {len(frames)} REDS {name} frames under {root}, expected {EXPECTED[name]}')
  return frames


def crop_like_reference(lr: np.ndarray, hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The reference's evaluation crop of a REDS frame pair to a multiple of 8 rows.

  ``lr`` is 180×320×C and ``hr`` 720×1280×C (H×W×C); returns the views
  ``lr[2:178]`` (176×320) and ``hr[8:712]`` (704×1280): the same region, two
  LR rows (eight HR rows) dropped at the top and at the bottom. Other sizes
  raise ``REDSError``.
  """
  for name, img, size in (('LR', lr, LR_SIZE), ('HR', hr, HR_SIZE)):
    if img.ndim != 3 or img.shape[:2] != size:
      raise REDSError(f'{name} frame must be {size[0]}×{size[1]}×C (H×W×C), got shape {img.shape}')
  return lr[LR_ROWS], hr[HR_ROWS]


def write_fake_reds(root: PathLike, split: str = 'val', sequences: int = 2,
                    frames: Iterable[int] = (9, 19), lr_size: tuple[int, int] = (16, 24),
                    scale: int = 4, seed: int = 0, sharp_lr: bool = False) -> pathlib.Path:
  """Writes a tiny fake REDS ``split`` in the official (deep) layout; returns ``root``.

  Sequences 000 … ``sequences``-1, each with the frames numbered ``frames``,
  as random RGB PNGs: the blur LR at ``lr_size`` (height, width), the sharp HR
  at ``scale``× that and, if ``sharp_lr``, the sharp LR at ``lr_size``.
  """
  _check('split', split, SPLITS)
  root = pathlib.Path(root)
  rng = np.random.default_rng(seed)
  h, w = lr_size
  sizes = {'blur_bicubic': (h, w), 'sharp': (h * scale, w * scale)}
  if sharp_lr:
    sizes['sharp_bicubic'] = (h, w)
  for kind, size in sizes.items():
    directory = candidate_dirs(root, kind, split)[0]
    for seq in range(sequences):
      (directory / f'{seq:03d}').mkdir(parents=True, exist_ok=True)
      for frame in frames:
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(_expected_path(directory, f'{seq:03d}_{frame:08d}'))
  return root
