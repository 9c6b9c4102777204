"""What ``jdsr-app`` does with a job, apart from the page: uploads in, files out.

``Workspace`` is the app's one temporary folder. The web framework's uploads, and
its copies of the files it serves, go to ``uploads/`` in it, each job's files to
``jobs/ID/``; nothing else is written.
A job takes its uploads only from ``uploads/`` (a path the browser names
elsewhere is refused, never opened) and copies them under names of its own.
When the job ends its inputs are removed, the uploads included; its results
stay for download until the same page starts its next job, and the whole
folder goes when the app stops.

``Restorer`` holds the model, loaded once, and restores with the options of
``jdsr-restore``: an image is written by ``restore.restore_file``, byte for byte
what ``jdsr-restore`` writes for the same options, with its size checked from
the header before decoding; a video by ``video.restore_video``, audio copied.
Every failure is a ``Refused`` with a one-line message for the page.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import secrets
import shutil
import tempfile
import threading
import time
from typing import Callable

from jdsr.errors import one_line
from jdsr.inference import restore, video
from jdsr.io import imagefile, outputs, pixels
from jdsr.nn import layers

# report(done, total, what): progress within a job; total None while compiling.
Report = Callable[[int, 'int | None', str], None]


class Refused(Exception):
  """A job that cannot be done; its message is one line for the page."""


@dataclasses.dataclass(frozen=True)
class ImageResult:
  """One restored image: its name, the file to download (the slider's "after"), and bicubic ×4."""
  name: str
  download: pathlib.Path
  bicubic: pathlib.Path


class Workspace:
  """The app's temporary folder (see the module docstring); ``close()`` removes it."""

  def __init__(self, parent: str | os.PathLike | None = None):
    self.root = pathlib.Path(tempfile.mkdtemp(prefix='jdsr-app-', dir=parent)).resolve()
    self.uploads = self.root / 'uploads'
    self.uploads.mkdir()
    (self.root / 'jobs').mkdir()

  def new_job(self) -> pathlib.Path:
    folder = self.root / 'jobs' / secrets.token_hex(8)
    (folder / 'in').mkdir(parents=True)
    (folder / 'out').mkdir()
    return folder

  def take(self, upload: str | os.PathLike, job: pathlib.Path, index: int,
           original_name: str | None = None) -> tuple[pathlib.Path, str]:
    """An upload copied into ``job`` (``in/INDEX/NAME.EXT``), and a safe name for its outputs.

    Refuses any path that is not a file under ``uploads/``: the browser names the
    uploads, and no other file is opened.
    """
    path = pathlib.Path(upload)
    try:
      real = path.resolve(strict=True)
    except (OSError, RuntimeError):
      real = None
    if real is None or not real.is_relative_to(self.uploads) or not real.is_file():
      raise Refused(f'{path.name or "?"}: not a file uploaded to this app')
    name = safe_stem(original_name or path.name)
    suffix = re.sub(r'[^\w.]', '', path.suffix.lower())[:10]
    copy = job / 'in' / str(index) / (name + suffix)
    copy.parent.mkdir()
    shutil.copyfile(real, copy)
    real.unlink(missing_ok=True)  # the upload itself is not needed again
    return copy, name

  def finish(self, job: pathlib.Path) -> None:
    """A job has ended: its inputs go, its results stay until ``drop``."""
    shutil.rmtree(job / 'in', ignore_errors=True)

  def drop(self, job: pathlib.Path | None) -> None:
    """A job's results are no longer needed (only folders inside this workspace)."""
    if job is not None and pathlib.Path(job).resolve().parent == self.root / 'jobs':
      shutil.rmtree(job, ignore_errors=True)

  def clean_uploads(self, older_than: float) -> None:
    """Removes uploads no job took (a page closed before it ran), older than ``older_than`` s."""
    now = time.time()
    for path in self.uploads.rglob('*'):
      try:
        if path.is_file() and now - path.stat().st_mtime > older_than:
          path.unlink()
      except OSError:
        pass

  def close(self) -> None:
    shutil.rmtree(self.root, ignore_errors=True)


def safe_stem(name: str) -> str:
  """A file name's stem reduced to letters, digits, '-', '_' and '.' (never empty, never hidden)."""
  stem = pathlib.PurePath(name.replace('\\', '/')).stem
  stem = re.sub(r'[^\w.-]+', '_', stem).strip('._') or 'image'
  return stem[:100]


class Restorer:
  """The model, loaded once, and the jobs: ``images`` and ``video``, one at a time."""

  def __init__(self, model, options: restore.Options, workspace: Workspace,
               announce: Callable[[str], None] | None = None):
    self.weights = model
    self.options = options
    self.workspace = workspace
    self.announce = announce
    self._models = {}
    self._lock = threading.Lock()  # the queue runs one job at a time; this makes sure
    self._prepared(self.options_for(tlsc=options.tlsc is not None, ensemble=False))

  def options_for(self, *, tlsc: bool, ensemble: bool) -> restore.Options:
    return dataclasses.replace(self.options, tlsc=(self.options.tlsc or layers.TLSC()) if tlsc
                               else None, ensemble=ensemble)

  def _prepared(self, options: restore.Options):
    """The model for these options (an engine per TLSC setting for a runtime, made once)."""
    key = options.tlsc
    if key not in self._models:
      try:
        self._models[key] = options.model(self.weights, announce=self.announce)
      except ValueError as e:
        raise Refused(one_line(e)) from None
    return self._models[key]

  def images(self, uploads: list[tuple[str, str | None]], job: pathlib.Path, *, tlsc: bool,
             ensemble: bool, report: Report | None = None
             ) -> tuple[list[ImageResult], list[str]]:
    """Restores each ``(upload, original name)``; the results and a message per failure.

    Raises ``Refused`` if none could be restored.
    """
    if not uploads:
      raise Refused('choose one or more images first')
    options = self.options_for(tlsc=tlsc, ensemble=ensemble)
    results, failures, names = [], [], set()
    with self._lock:
      model = self._prepared(options)
      for index, (upload, original) in enumerate(uploads):
        try:
          source, name = self.workspace.take(upload, job, index, original)
        except Refused as e:
          failures.append(str(e))
          continue
        try:
          if outputs.kind_of(source) != outputs.IMAGE:
            raise Refused(f'{source.name}: not an image this app reads '
                          f'({", ".join(imagefile.IMAGE_SUFFIXES)})')
          name = _unique(name, names)
          what = f'{name} ({index + 1} of {len(uploads)})' if len(uploads) > 1 else name
          results.append(self._image(model, source, job / 'out', name, options, what, report))
        except Refused as e:
          failures.append(str(e))
        except (imagefile.ImageError, ValueError, OSError) as e:
          failures.append(_message(e, source.name))
    self.workspace.finish(job)
    if not results:
      raise Refused('; '.join(failures))
    return results, failures

  def _image(self, model, source: pathlib.Path, out: pathlib.Path, name: str,
             options: restore.Options, what: str, report: Report | None) -> ImageResult:
    progress = restore.Progress(
        compiling=None if report is None else
        lambda h, w: report(0, None, f'{what}: compiling the model for {w}x{h} inputs (once)'),
        tiles=None if report is None else lambda done, total: report(done, total, f'{what}: tiles'))
    target = out / f'{name}_x4.png'
    image, _ = restore.restore_file(model, source, target, options, progress)
    bicubic = out / f'.{name}_bicubic.png'
    imagefile.write_image(bicubic, pixels.upscale(image.rgb, restore.SCALE))
    return ImageResult(name, target, bicubic)

  def video(self, upload: tuple[str, str | None], job: pathlib.Path, *, tlsc: bool,
            ensemble: bool, report: Report | None = None) -> pathlib.Path:
    """Restores one video (audio copied); the restored file, in the source's container."""
    options = self.options_for(tlsc=tlsc, ensemble=ensemble)
    with self._lock:
      try:
        model = self._prepared(options)
        source, name = self.workspace.take(upload[0], job, 0, upload[1])
        if outputs.kind_of(source) != outputs.VIDEO:
          raise Refused(f'{source.name}: not a video this app reads '
                        f'({", ".join(outputs.VIDEO_SUFFIXES)})')
        target = job / 'out' / f'{name}_x4{source.suffix}'
        compiling = None if report is None else lambda h, w: report(
            0, None, f'{name}: compiling the model for {w}x{h} inputs (once)')
        frames = None if report is None else lambda done, total: report(done, total,
                                                                         f'{name}: frames')
        try:
          video.restore_video(model, source, target, options, frames=frames,
                              progress=restore.Progress(compiling=compiling))
        except (video.VideoError, ValueError, OSError) as e:
          raise Refused(_message(e, source.name)) from None
        return target
      finally:
        self.workspace.finish(job)


def _unique(name: str, taken: set[str]) -> str:
  candidate, n = name, 2
  while candidate in taken:
    candidate, n = f'{name}-{n}', n + 1
  taken.add(candidate)
  return candidate


def _message(error: BaseException, name: str) -> str:
  """One line for the page, naming the upload (never the workspace's paths)."""
  message = one_line(error)
  message = re.sub(r'\S*/jobs/[0-9a-f]{16}/(in/\d+|out)/', '', message)
  if isinstance(error, restore.OutputTooLarge):
    message = f'{name}: {message}; start jdsr-app with a larger --max_output_megapixels if you have the memory'
  elif name not in message:
    message = f'{name}: {message}'
  return message
