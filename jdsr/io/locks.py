"""A folder held by one run at a time: ``FOLDER/.lock``, a lease kept alive by a heartbeat.

``hold(folder)`` creates ``.lock`` exclusively, with the holder's pid, host and
a token, and rewrites it every ``HEARTBEAT`` seconds while the run lasts; it is
removed at the end. Another run that finds the lock:

* takes it over at once when the holder is provably gone: a process of this
  host that no longer exists, or whose pid is its own (a restarted container's
  first process gets the pid of the one before it);
* takes it over when the lock has not been refreshed for ``LEASE`` seconds
  (by its modification time): the holder is on another host, or cannot be
  checked, and has stopped;
* otherwise is refused with a ``LockError`` naming the holder and saying when
  the lease runs out.

What the lock promises: two live runs never hold one folder. A run whose
heartbeat stops for ``LEASE`` seconds (a frozen host, a lost network mount)
may lose its folder to another.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import secrets
import socket
import threading
import time
from typing import Iterator

NAME = '.lock'
HEARTBEAT = 30.0  # seconds between refreshes
LEASE = 120.0  # seconds without a refresh after which a lock is taken over


class LockError(RuntimeError):
  """The folder is held by another run."""


def _read(path: pathlib.Path) -> dict | None:
  """The lock's holder, or None if it is unreadable (a run that died while writing it)."""
  try:
    holder = json.loads(path.read_text())
  except (OSError, ValueError):
    return None
  return holder if isinstance(holder, dict) else None


def _alive(pid) -> bool:
  try:
    os.kill(int(pid), 0)
  except (ProcessLookupError, ValueError, TypeError):
    return False
  except PermissionError:  # someone else's process
    return True
  return True


def _age(path: pathlib.Path) -> float:
  try:
    return time.time() - path.stat().st_mtime
  except OSError:
    return float('inf')


def _gone(holder: dict | None, age: float, lease: float) -> str | None:
  """Why the holder of a lock is gone (so the lock may be taken over), or None if it may be alive."""
  if holder is None:
    return 'an unreadable lock'
  here = holder.get('host') == socket.gethostname()
  if here and holder.get('pid') == os.getpid():
    return 'its pid is this process (a restarted container)'
  if here and not _alive(holder.get('pid')):
    return f"process {holder.get('pid')} is gone"
  if age > lease:
    return f'not refreshed for {age:.0f} s (the lease is {lease:.0f} s)'
  return None


@contextlib.contextmanager
def hold(folder: str | os.PathLike, *, what: str = 'run', heartbeat: float = HEARTBEAT,
         lease: float = LEASE) -> Iterator[pathlib.Path]:
  """Hold ``folder/.lock`` while the block runs; a LockError if another live run holds it."""
  path = pathlib.Path(folder) / NAME
  me = {'pid': os.getpid(), 'host': socket.gethostname(), 'token': secrets.token_hex(8),
        'started': time.strftime('%Y-%m-%d %H:%M:%S')}
  while True:
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      holder, age = _read(path), _age(path)
      why = _gone(holder, age, lease)
      if why is None:
        holder = holder or {}
        raise LockError(
            f"{folder} is in use by another {what} (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('started')}, refreshed {age:.0f} s ago); "
            f'its lock is taken over once it has not been refreshed for {lease:.0f} s') from None
      if _read(path) != holder:  # replaced meanwhile (another run took it over): judge again
        continue
      logging.warning('%s: taking over the lock of a %s that is gone (%s): %s', folder, what, why,
                      holder)
      path.unlink(missing_ok=True)
    else:
      with os.fdopen(fd, 'w') as f:
        json.dump(me, f)
      break

  stop = threading.Event()

  def beat() -> None:
    while not stop.wait(heartbeat):
      if (_read(path) or {}).get('token') != me['token']:
        logging.warning('%s: the lock is no longer this %s\'s', folder, what)
        return
      try:
        os.utime(path)
      except OSError:
        pass

  thread = threading.Thread(target=beat, name='lock-heartbeat', daemon=True)
  thread.start()
  try:
    yield path
  finally:
    stop.set()
    thread.join()
    if (_read(path) or {}).get('token') == me['token']:
      path.unlink(missing_ok=True)
