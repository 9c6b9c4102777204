"""A folder held by one run at a time: ``FOLDER/.lock``, a lease kept alive by a heartbeat.

``hold(folder)`` creates ``.lock`` exclusively, with the holder's pid, host and
a token, and rewrites it every ``HEARTBEAT`` seconds while the run lasts; it is
removed at the end. Another run that finds the lock:

* takes it over at once when the holder is provably gone: a process of this
  host that no longer exists, or whose pid is its own (a restarted container's
  first process gets the pid of the one before it);
* takes it over when the lock has not been refreshed for ``LEASE`` seconds
  (by its modification time): the holder is on another host, or cannot be
  checked, and has stopped. A modification time in the future (another host's
  clock) counts from when this host first saw it unchanged (``.lock.seen``),
  so the lease runs out whatever the clocks say;
* takes over, with a warning, a lock whose pid cannot be a process (0, negative,
  too large) or that cannot be read;
* otherwise is refused with a ``LockError`` naming the holder and saying when
  the lease runs out. A ``.lock`` that is a folder is a ``LockError`` too.

What the lock promises: two live runs never hold one folder. A run whose
heartbeat stops for ``LEASE`` seconds (a frozen host, a lost network mount)
may lose its folder to another; and a run whose lock is removed or replaced
while it runs learns it from ``Lease.check()`` (the heartbeat looks every
``HEARTBEAT`` seconds, ``check`` reads the lock itself), so that it can stop
before it writes over the other run's work.
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
  """The folder is held by another run (or its lock was taken from this one)."""


class Lease:
  """What ``hold`` yields: the lock's path, and whether this run still holds it."""

  def __init__(self, path: pathlib.Path, token: str, what: str):
    self.path, self.token, self.what = path, token, what
    self.lost = threading.Event()  # set by the heartbeat when the lock is no longer ours

  def held(self) -> bool:
    """Whether ``.lock`` is still this run's (read now)."""
    if not self.lost.is_set() and (_read(self.path) or {}).get('token') != self.token:
      self.lost.set()
    return not self.lost.is_set()

  def check(self) -> None:
    """Raises a LockError if the lock was removed or taken by another run."""
    if not self.held():
      holder = _read(self.path)
      by = (f"now held by pid {holder.get('pid')} on {holder.get('host')}" if holder
            else 'removed')
      raise LockError(f'{self.path} was {by} while this {self.what} ran: stopping without '
                      'writing anything more, so as not to harm the other run')


def _read(path: pathlib.Path) -> dict | None:
  """The lock's holder, or None if it is unreadable (a run that died while writing it)."""
  try:
    holder = json.loads(path.read_text())
  except (OSError, ValueError):
    return None
  return holder if isinstance(holder, dict) else None


def _alive(pid) -> bool:
  """Whether ``pid`` is a live process of this host (not a pid at all: False)."""
  if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
    return False  # 0 and -1 would ask about process groups, and always answer yes
  try:
    os.kill(pid, 0)
  except (ProcessLookupError, OverflowError, ValueError):
    return False
  except PermissionError:  # someone else's process
    return True
  return True


def _age(path: pathlib.Path) -> float:
  """Seconds since the lock was refreshed, by this host's clock.

  A modification time in the future (a holder whose clock is ahead) says nothing
  about when it was written: the age is then counted from the moment this host
  first saw that lock unchanged, noted in ``.lock.seen``.
  """
  try:
    stat = path.stat()
  except OSError:
    return float('inf')
  now = time.time()
  if stat.st_mtime <= now + 1:
    return now - stat.st_mtime
  seen = path.with_name(path.name + '.seen')
  stamp = [stat.st_mtime_ns, path.read_bytes().hex() if path.is_file() else '']
  try:
    record = json.loads(seen.read_text())
    if record.get('stamp') == stamp:
      return now - float(record['first_seen'])
  except (OSError, ValueError, TypeError, KeyError):
    pass
  try:
    seen.write_text(json.dumps({'stamp': stamp, 'first_seen': now}))
  except OSError:
    pass
  return 0.0


def _gone(holder: dict | None, age: float, lease: float) -> str | None:
  """Why the holder of a lock is gone (so the lock may be taken over), or None if it may be alive."""
  if holder is None:
    return 'an unreadable lock'
  pid = holder.get('pid')
  if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
    return f'its pid {pid!r} cannot be a process'
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
         lease: float = LEASE) -> Iterator[Lease]:
  """Hold ``folder/.lock`` while the block runs; a LockError if another live run holds it.

  Yields a ``Lease``: ``lease.check()`` raises a LockError once the lock has been
  removed or taken by another run.
  """
  path = pathlib.Path(folder) / NAME
  if path.is_dir() and not path.is_symlink():
    raise LockError(f'{path} is a folder, not a lock: remove it to use {folder}')
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
      path.with_name(NAME + '.seen').unlink(missing_ok=True)
    else:
      with os.fdopen(fd, 'w') as f:
        json.dump(me, f)
      break

  stop = threading.Event()
  lease_ = Lease(path, me['token'], what)

  def beat() -> None:
    while not stop.wait(heartbeat):
      if not lease_.held():
        logging.warning('%s: the lock is no longer this %s\'s: it stops before it writes more',
                        folder, what)
        return
      try:
        os.utime(path)
      except OSError:
        pass

  thread = threading.Thread(target=beat, name='lock-heartbeat', daemon=True)
  thread.start()
  try:
    yield lease_
  finally:
    stop.set()
    thread.join()
    if (_read(path) or {}).get('token') == me['token']:
      path.unlink(missing_ok=True)
