"""Writing files atomically: the one way the program writes its outputs.

``atomic_write`` writes a temporary file beside the target and renames it over
the target, so a reader (or a crash) sees the old file or the complete new one,
never a part. Every file gets the permissions a normally created file would have.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import tempfile
from typing import Callable


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[str], None]) -> None:
  """Writes ``data`` to ``path`` atomically: the complete new file, or ``path`` as it was.

  data: bytes; str (written as UTF-8 text); or a callable ``write(tmp_path)`` that
    writes the file at the temporary path it is given (for Pillow, torch.save, ...).

  Parent folders are created. The temporary file '.NAME.tmp-XXXXXXXX.EXT' is created
  exclusively in the same folder (``tempfile.mkstemp``), given mode 0o666 & ~umask,
  written, then ``os.replace``d onto ``path``. If ``path`` is a symlink, the link
  itself is replaced: this never writes through a link. On any error (KeyboardInterrupt
  included) the temporary file is removed and the error re-raised. No fsync: the rename
  is atomic for other processes, not durable across a power cut.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.tmp-', suffix=path.suffix)
  try:
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600)
    if callable(data):
      os.close(fd)
      fd = None
      data(tmp)
    else:
      content = data.encode() if isinstance(data, str) else bytes(data)
      with os.fdopen(fd, 'wb') as f:
        fd = None
        f.write(content)
    os.replace(tmp, path)
  except BaseException:
    if fd is not None:
      os.close(fd)
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def _umask() -> int:
  """The process's umask: from /proc on Linux, else by setting it and straight back (racy)."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('Umask:'):
          return int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def swap_in_folder(new: str | os.PathLike, target: str | os.PathLike) -> None:
  """Puts the complete folder ``new`` at ``target`` (beside it), replacing a folder there.

  The old folder is moved aside, ``new`` renamed into its place, then the old one
  removed: a crash leaves either the old folder or the new one at ``target``.
  """
  new, target = pathlib.Path(new), pathlib.Path(target)
  if target.exists():
    old = target.parent / f'.{target.name}.old-{secrets.token_hex(4)}'
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old)
  else:
    os.replace(new, target)
