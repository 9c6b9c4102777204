"""Evaluation: restore a list of images, score them, write tables, images and figures.

``evaluate(model, items, ...)`` is what ``eval.py`` runs. An item is one input
image with, optionally, its ground truth. For each it restores the input
(``jdsr.inference.restore``), scores it with the paper's PSNR/SSIM against the ground
truth, scores the bicubic upscaling of the input as the baseline, and writes:

* ``results.csv``: one row per image (name, psnr, ssim, bicubic_psnr,
  bicubic_ssim, seconds), rewritten after every image so nothing is lost on a crash;
* ``summary.json``: the means, the settings and the images that failed;
* ``images/NAME.png``: the restored image, grayscale, alpha and 16-bit depth
  kept as in the input (atomic writes, never over an input);
* ``figures/NAME.png``: bicubic | ours | ground truth, with a zoomed crop.

A file that cannot be read gets a one-line error naming it; the others are
still done. Every file is written atomically by ``jdsr.io.files.atomic_write``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
import sys
import time
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from jdsr.evaluation import figures, metrics
from jdsr.io import files, imagefile, locks, outputs, pixels
from jdsr.data import reds
from jdsr.errors import one_line
from jdsr.nn.model import JDSR
from jdsr.inference import runtimes
from jdsr.inference.restore import Options, OutputTooLarge, restore

FIELDS = ('name', 'psnr', 'ssim', 'bicubic_psnr', 'bicubic_ssim', 'seconds')


@dataclasses.dataclass(frozen=True)
class Item:
  """One image to restore: its name (of its outputs), input path, and ground-truth path if any.

  ``skip``: why the file is not restored (an unsupported type, an ambiguous
  ground truth), reported in one line. ``expects_target``: a ground truth was
  looked for (a folder of them was given), so its absence is reported.
  """
  name: str
  input: pathlib.Path
  target: pathlib.Path | None = None
  skip: str | None = None
  expects_target: bool = False


def reds_items(root: str | os.PathLike, subset: str = 'val300') -> list[Item]:
  """The REDS validation frames (``subset`` 'val300' or 'val'), official layout."""
  if subset not in ('val300', 'val'):
    raise ValueError(f"subset must be 'val300' or 'val', got {subset!r}")
  frames = reds.list_frames(root, split='val', subset='val300' if subset == 'val300' else None)
  return [Item(f.id, f.blur_lr, f.sharp_hr) for f in frames]


def folder_items(input_dir: str | os.PathLike,
                 target_dir: str | os.PathLike | None = None) -> list[Item]:
  """Every file of a folder; ground truths matched by file name (stem) when given.

  Files that are not images come as items with ``skip`` set. Outputs are named
  as ``jdsr.io.outputs`` names them (the stem, or the whole file name where two
  inputs share a stem), so no result overwrites another. A missing folder, or
  one without any image, is an ImageError.
  """
  folder = pathlib.Path(input_dir)
  if not folder.is_dir():
    raise imagefile.ImageError(folder, 'no such folder')
  found, _ = outputs.find([folder])
  if not any(item.kind == outputs.IMAGE for item in found):
    others = ', '.join(item.path.name for item in found[:5])
    raise imagefile.ImageError(folder, f'no images ({", ".join(imagefile.IMAGE_SUFFIXES)}) in '
                                       f'this folder' + (f'; found {others}' if others else ''))
  targets: dict[str, list[pathlib.Path]] = {}
  for path in imagefile.list_images(target_dir) if target_dir else []:
    targets.setdefault(path.stem, []).append(path)
  items = []
  for item in found:
    if item.kind != outputs.IMAGE:
      items.append(Item(item.path.name, item.path, skip=outputs.skip_reason(item)
                        if item.kind == outputs.OTHER else 'a video: jdsr-restore restores videos'))
      continue
    matches = targets.get(item.path.stem, [])
    if len(matches) > 1:
      items.append(Item(item.name, item.path, skip=f'{len(matches)} ground truths match it '
                        f'({", ".join(p.name for p in matches)}): keep one'))
    else:
      items.append(Item(item.name, item.path, matches[0] if matches else None,
                        expects_target=bool(target_dir)))
  return items


def evaluate(model: JDSR, items: Sequence[Item], output_dir: str | os.PathLike,
             options: Options = Options(), *, protocol: str = 'full', save_images: bool = True,
             save_figures: bool = True, reference_outputs: str | None = None,
             progress: bool = True) -> dict:
  """Restore and score every item; returns the summary also written to summary.json.

  ``options``: how each image is restored (``jdsr.inference.restore.Options``).
  ``protocol``: 'full' (whole images) or 'seed' (REDS frames cropped to 176/704
  rows as the reference does). ``reference_outputs``: a folder of the official
  test script's outputs, compared with ours image by image. While it runs, the
  output folder is locked (``jdsr.io.locks``): a second evaluation into it is
  refused with a ``LockError``.
  """
  if protocol not in ('full', 'seed'):
    raise ValueError(f"protocol must be 'full' or 'seed', got {protocol!r}")
  model = options.model(model, announce=lambda m: print(m, file=sys.stderr, flush=True))  # once
  out = pathlib.Path(output_dir)
  if out.exists() and not out.is_dir():
    raise NotADirectoryError(f'{out}: the output folder is a file')
  out.mkdir(parents=True, exist_ok=True)
  # One run at a time per output folder: two would interleave results.csv and summary.json.
  with locks.hold(out, what='evaluation'):
    return _restore_and_score(model, items, out, options, protocol=protocol,
                              save_images=save_images, save_figures=save_figures,
                              reference_outputs=reference_outputs, progress=progress)


def _restore_and_score(model: JDSR, items: Sequence[Item], out: pathlib.Path, options: Options,
                       *, protocol: str, save_images: bool, save_figures: bool,
                       reference_outputs: str | None, progress: bool) -> dict:
  # An input is its path and, if it is a link, the file the link points to.
  protected = {q for item in items for p in (item.input, item.target) if p
               for q in (_where(p), p.resolve())}
  fields = FIELDS + (('reference_psnr',) if reference_outputs else ())
  rows, failed = [], []
  skipped = [item for item in items if item.skip]
  for item in skipped:
    tqdm.write(f'skipped: {item.input}: {item.skip}', file=sys.stderr)
  items = [item for item in items if not item.skip]
  files.atomic_write(out / 'results.csv', _csv(rows, fields))  # an unwritable folder fails here
  bar = tqdm(items, desc='restoring', unit='image', disable=not progress, file=sys.stderr)
  unscored = [item for item in items if item.expects_target and item.target is None]
  for item in unscored:
    tqdm.write(f'no ground truth: {item.input} has no file named {item.input.stem}.* among the '
               'ground truths: restored, not scored', file=sys.stderr)
  for item in bar:
    try:
      row = _one(model, item, out, protected, options, protocol=protocol,
                 save_images=save_images, save_figures=save_figures,
                 reference_outputs=reference_outputs)
    except (imagefile.ImageError, reds.REDSError, ValueError, OSError, MemoryError) as e:
      message = one_line(e)
      if isinstance(e, MemoryError):
        message = (f'out of memory ({message}): lower --config.max_output_megapixels '
                   'or set --tile')
      elif isinstance(e, OutputTooLarge):
        message += '; raise --config.max_output_megapixels if you have the memory'

      if item.input.name not in message:
        message = f'{item.input}: {message}'
      tqdm.write(f'error: {message}', file=sys.stderr)
      failed.append({'name': item.name, 'error': message})
      continue
    rows.append(row)
    # Rewritten whole after every image: nothing is lost on a crash, nothing written through a link.
    files.atomic_write(out / 'results.csv', _csv(rows, fields))
    if row['psnr'] is not None:
      bar.set_postfix(psnr=f"{np.mean([r['psnr'] for r in rows if r['psnr'] is not None]):.2f}")
  summary = _summary(rows, failed, options, protocol, len(items), model)
  summary['skipped'] = [{'name': item.input.name, 'reason': item.skip} for item in skipped]
  summary['no_ground_truth'] = [item.name for item in unscored]
  if reference_outputs:
    summary['no_reference'] = [r['name'] for r in rows if r.get('reference_psnr') is None]
  files.atomic_write(out / 'summary.json', json.dumps(summary, indent=2, default=str) + '\n')
  return summary


def _csv(rows: list[dict], fields: tuple[str, ...]) -> str:
  text = io.StringIO()
  writer = csv.DictWriter(text, fields, lineterminator='\n')
  writer.writeheader()
  writer.writerows({k: _fmt(v) for k, v in row.items()} for row in rows)
  return text.getvalue()


def _one(model, item: Item, out: pathlib.Path, protected: set, options: Options, *,
         protocol: str, save_images: bool, save_figures: bool,
         reference_outputs: str | None) -> dict:
  source = imagefile.read_image(item.input, check_size=options.check_size)
  lr = source.rgb
  hr = None
  if item.target:
    truth = imagefile.read_image(item.target)
    if truth.gray and not source.gray:
      raise ValueError(f'{item.target}: the ground truth is grayscale and the input {item.input} '
                       'is in colour: not scored against it (give a colour ground truth)')
    hr = truth.rgb
  if protocol == 'seed':
    if hr is None:
      raise ValueError(f'{item.input}: the seed protocol needs the ground truth')
    lr, hr = reds.crop_like_reference(lr, hr)
  if hr is not None and hr.shape[:2] != (4 * lr.shape[0], 4 * lr.shape[1]):
    raise ValueError(f'{item.target}: ground truth is {hr.shape[1]}x{hr.shape[0]}, expected 4x '
                     f'the input ({4 * lr.shape[1]}x{4 * lr.shape[0]})')
  start = time.perf_counter()
  sr = restore(model, lr, options)
  seconds = time.perf_counter() - start
  row = {'name': item.name, 'psnr': None, 'ssim': None, 'bicubic_psnr': None,
         'bicubic_ssim': None, 'seconds': seconds}
  bicubic = pixels.upscale(lr, 4)
  if hr is not None:
    row.update(psnr=metrics.psnr(sr, hr), ssim=metrics.ssim(sr, hr),
               bicubic_psnr=metrics.psnr(bicubic, hr), bicubic_ssim=metrics.ssim(bicubic, hr))
  if reference_outputs:  # None where the official script wrote no image of this name
    row['reference_psnr'] = _reference_psnr(sr, reference_outputs, item.name)
  if save_images:  # in the source's layout: grayscale, alpha and bit depth kept
    alpha = None if source.alpha is None else pixels.upscale(source.alpha, 4)
    _write(out / 'images' / f'{item.name}.png', protected,
           lambda p: imagefile.write_image(p, sr, alpha, bits=source.bits, gray=source.gray))
  if save_figures:
    panels = [(_label('bicubic', row['bicubic_psnr']), bicubic), (_label('ours', row['psnr']), sr)]
    if hr is not None:
      panels.append(('ground truth', hr))
    figure = figures.side_by_side(panels, subtitle=item.name)
    _write(out / 'figures' / f'{item.name}.png', protected,
           lambda p: figures.save_figure(p, figure))
  return row


def _reference_psnr(sr: np.ndarray, folder: str, name: str) -> float | None:
  """PSNR between our output and the official script's output of the same image."""
  matches = [p for p in imagefile.list_images(folder) if p.stem == name]
  if not matches:
    tqdm.write(f'no reference: {folder} has no output named {name}.*; {name} is restored and '
               'scored without it', file=sys.stderr)
    return None
  ref = imagefile.read_image(matches[0]).rgb
  if ref.shape != sr.shape:
    raise ValueError(f'{matches[0]}: reference output is {ref.shape[1]}x{ref.shape[0]}, '
                     f'ours is {sr.shape[1]}x{sr.shape[0]}')
  return metrics.psnr(sr, ref)


def _write(path: pathlib.Path, protected: set, write) -> None:
  # The writers replace a link rather than write through it, so what counts is the path itself.
  if _where(path) in protected:
    raise ValueError(f'{path}: refusing to write over an input image; choose another output dir')
  write(path)


def _where(path: pathlib.Path) -> pathlib.Path:
  """``path`` with its folders resolved, not its last component (which may be a link)."""
  return path.parent.resolve() / path.name


def _label(what: str, psnr: float | None) -> str:
  return what if psnr is None else f'{what} {psnr:.2f} dB'


def _fmt(value):
  if isinstance(value, float):
    return f'{value:.4f}' if math.isfinite(value) else str(value)
  return '' if value is None else value


def _mean(rows: Iterable[dict], key: str) -> float | None:
  values = [r[key] for r in rows if r.get(key) is not None]
  return float(np.mean(values)) if values else None


def _summary(rows: list[dict], failed: list[dict], options: Options, protocol: str,
             total: int, model: JDSR | runtimes.Engine) -> dict:
  tlsc = options.tlsc
  return {
      'images': total,
      'restored': len(rows),
      'scored': sum(r['psnr'] is not None for r in rows),
      'failed': failed,
      'mean': {k: _mean(rows, k) for k in FIELDS[1:] + ('reference_psnr',)
               if any(k in r for r in rows)},
      'settings': {
          'tlsc': dataclasses.asdict(tlsc) if tlsc else None,
          'ensemble': options.ensemble, 'tile': options.tile, 'protocol': protocol,
          'runtime': options.runtime,
          'dtype': (model.dtype if isinstance(model, runtimes.Engine)
                    else dict(model.config).get('dtype', 'float32')),
      },
  }


def table(summary: dict) -> str:
  """The summary as a small text table: ours and the bicubic baseline."""
  mean = summary['mean']
  lines = [f"{'':10s} {'PSNR (dB)':>10s} {'SSIM':>8s}"]
  for label, p, s in (('ours', 'psnr', 'ssim'), ('bicubic', 'bicubic_psnr', 'bicubic_ssim')):
    if mean.get(p) is not None:
      lines.append(f'{label:10s} {mean[p]:10.3f} {mean[s]:8.4f}')
  if mean.get('reference_psnr') is not None:
    lines.append(f"ours vs the official outputs: {mean['reference_psnr']:.2f} dB PSNR")
  skipped = f", {len(summary['skipped'])} other files skipped" if summary.get('skipped') else ''
  lines.append(f"{summary['restored']} of {summary['images']} images restored, "
               f"{summary['scored']} scored, {len(summary['failed'])} failed{skipped}; "
               f"{mean.get('seconds') or 0:.2f} s per image")
  return '\n'.join(lines)
