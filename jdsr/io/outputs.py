"""Where each input's output goes: the one planner of ``jdsr-restore`` and ``eval.py``.

``find(paths)`` turns the files and folders a user names into inputs. A folder
stands for the files directly in it (hidden ones skipped), sorted by name;
each file is an image, a video, or something else (``Input.kind``), by its
extension. Each input gets a ``name`` for its outputs: its stem, or its whole
file name where two images share a stem (``a.png`` and ``a.jpg`` are named
``a.png`` and ``a.jpg``, their outputs ``a.png.png`` and ``a.jpg.png``), so
that no output overwrites another.

``plan(inputs, output)`` then maps each input to its output file, refusing
outputs that are inputs, two inputs that would share an output, an existing
file at an output (unless ``overwrite``), and an output folder that is an
input folder (the next run would restore the outputs again).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
from typing import Iterable

from jdsr.io.imagefile import IMAGE_SUFFIXES, WRITE_FORMATS

WRITE_SUFFIXES = tuple(WRITE_FORMATS)  # the image formats written
VIDEO_SUFFIXES = ('.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi')  # read and written (PyAV)
IMAGE, VIDEO, OTHER = 'image', 'video', 'other'


def kind_of(path: str | os.PathLike) -> str:
  """``'image'``, ``'video'`` or ``'other'``, by the file's extension (any case)."""
  suffix = pathlib.Path(path).suffix.lower()
  return IMAGE if suffix in IMAGE_SUFFIXES else VIDEO if suffix in VIDEO_SUFFIXES else OTHER


@dataclasses.dataclass(frozen=True)
class Input:
  """One input file: its path, the name its outputs take, and its kind."""
  path: pathlib.Path
  name: str
  kind: str
  in_folder: bool = False  # found by listing a folder (not named by the user)


@dataclasses.dataclass(frozen=True)
class Job:
  """One input and the file its restoration goes to."""
  source: pathlib.Path
  target: pathlib.Path
  video: bool


def list_folder(folder: str | os.PathLike) -> list[pathlib.Path]:
  """The files directly in ``folder``, hidden ones skipped, sorted by name; OSError if unreadable."""
  folder = pathlib.Path(folder)
  return sorted((p for p in folder.iterdir() if not p.name.startswith('.') and p.is_file()),
                key=lambda p: p.name)


def find(paths: Iterable[str | os.PathLike]) -> tuple[list[Input], list[str]]:
  """The inputs that ``paths`` (files and folders) stand for, and a one-line error for each problem.

  Files named directly are inputs whatever their extension (the reader decides);
  a folder contributes every file in it, those of other types as ``'other'``.
  A missing path, an unreadable folder and a folder with no image or video are errors.
  """
  found, errors = [], []
  for path in map(pathlib.Path, paths):
    if path.is_dir():
      try:
        listed = list_folder(path)
      except OSError as e:
        errors.append(f'{path}: cannot list this folder ({e.strerror or e})')
        continue
      if not any(kind_of(p) != OTHER for p in listed):
        others = ', '.join(p.name for p in listed[:5])
        errors.append(f'{path}: no images ({", ".join(IMAGE_SUFFIXES)}) or videos in this folder'
                      + (f'; found {others}' if others else ''))
      found += [(p, True) for p in listed]
    elif path.exists():
      found.append((path, False))
    else:
      errors.append(f'{path}: no such file or folder')
  kinds = [kind_of(p) if in_folder or kind_of(p) == VIDEO else IMAGE  # named: let the reader say
           for p, in_folder in found]
  stems = collections.Counter(p.stem for (p, _), kind in zip(found, kinds) if kind != VIDEO)
  inputs = []
  for (p, in_folder), kind in zip(found, kinds):
    # A video's output keeps its extension (a.mp4, a.mkv): its stem does not clash.
    unique = kind == VIDEO or stems[p.stem] == 1
    inputs.append(Input(p, p.stem if unique else p.name, kind, in_folder))
  return inputs, errors


def skip_reason(item: Input) -> str:
  """Why an input of another type is skipped (to follow its path)."""
  return f'not an image ({", ".join(IMAGE_SUFFIXES)}) or a video ({", ".join(VIDEO_SUFFIXES)})'



def plan(inputs: list[Input], output: pathlib.Path, *, single: bool, overwrite: bool = False,
         suffix: str = '', ext: str = 'png') -> tuple[list[Job], list[str]]:
  """Each image or video input → its output under ``output``, and a one-line error per refusal.

  ``single`` (the user named one file): ``output`` may name the output file,
  whose extension must suit the input (an image format, or a video one).
  Otherwise ``output`` is a folder: ``NAME.png`` for images, ``NAME.EXT`` for
  videos (EXT the input's); an ``output`` that looks like a file is then a
  ValueError. In a folder, ``suffix`` is added to each name (``NAME_SUFFIX.png``)
  and ``ext`` is the images' format: an extension of ``WRITE_SUFFIXES`` without
  its dot, or ``'auto'`` for the input's own where it is written (PNG otherwise).
  Inputs of other types (``'other'``) get no job (see ``skip_reason``).
  An output folder that is a folder of inputs is a ValueError (its outputs would
  be read as inputs by the next run); an existing file at an output is refused
  unless ``overwrite``.
  """
  if ext != 'auto' and f'.{ext}' not in WRITE_SUFFIXES:
    raise ValueError(f'--ext {ext}: not an image format written here (one of auto, '
                     f'{", ".join(s[1:] for s in WRITE_SUFFIXES)})')
  if os.sep in suffix or (os.altsep and os.altsep in suffix):
    raise ValueError(f'--suffix {suffix}: a name part, not a path')
  tail = f'_{suffix}' if suffix else ''
  suffix = output.suffix.lower()
  names_a_file = single and not output.is_dir() and suffix != ''
  if not single and not output.is_dir() and suffix in WRITE_SUFFIXES + VIDEO_SUFFIXES:
    raise ValueError(f'-o {output}: with several inputs (or a folder), -o must be a folder')
  folders = {item.path.parent.resolve() for item in inputs if item.in_folder}
  if not names_a_file and output.resolve() in folders:
    raise ValueError(f'-o {output}: that is an input folder, and its restored images would be '
                     'restored again by the next run; choose another folder')
  jobs, errors, taken = [], [], {}
  protected = {p.path.resolve() for p in inputs}
  for item in inputs:
    if item.kind == OTHER:
      continue
    is_video = item.kind == VIDEO
    if names_a_file:
      allowed = VIDEO_SUFFIXES if is_video else WRITE_SUFFIXES
      if suffix not in allowed:
        errors.append(f'-o {output}: {item.path} is {"a video" if is_video else "an image"}, so '
                      f'its output must end in one of {", ".join(allowed)}')
        continue
      target = output
    else:
      own = item.path.suffix.lower()
      image_ext = f'.{ext}'
      if ext == 'auto':
        image_ext = own if own in WRITE_SUFFIXES else '.png'
      target = output / (item.name + tail + (own if is_video else image_ext))
    if target.resolve() in protected:
      errors.append(f'{target}: refusing to write over an input; choose another output')
    elif not overwrite and (target.exists() or target.is_symlink()):
      errors.append(f'{target}: exists; pass --overwrite to replace it')
    elif target.resolve() in taken:
      errors.append(f'{item.path}: its output {target} is also that of '
                    f'{taken[target.resolve()]}; restore it separately')
    else:
      taken[target.resolve()] = item.path
      jobs.append(Job(item.path, target, is_video))
  return jobs, errors
