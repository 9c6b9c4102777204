"""A folder's lock (jdsr.io.locks): a lease with a heartbeat, taken over only when its holder is gone.

Other runs' locks are written as files; the clock is moved with monkeypatch, never waited for.
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from jdsr.io import locks
from tests.helpers import write_lock


# -- a lease with a heartbeat ----------------------------------------------------------------


def test_a_restarted_container_takes_over_the_lock_of_its_own_pid(tmp_path):
  """PID 1 restarted: the lock names this very process, which cannot be another run."""
  write_lock(tmp_path, os.getpid(), socket.gethostname())
  with locks.hold(tmp_path) as lease:
    assert json.loads(lease.path.read_text())['token'] != 'theirs'
  assert not (tmp_path / locks.NAME).exists()


def test_a_lock_from_another_host_is_a_lease(tmp_path):
  path = write_lock(tmp_path, 12345, 'some-other-host')
  with pytest.raises(locks.LockError, match='in use by another run .*pid 12345 on some-other-host'
                     r'.*taken over once it has not been refreshed for 120 s'):
    with locks.hold(tmp_path):
      pass
  assert json.loads(path.read_text())['token'] == 'theirs'  # untouched
  write_lock(tmp_path, 12345, 'some-other-host', age=121)  # its heartbeat stopped: a requeue
  with locks.hold(tmp_path):
    pass


def test_the_heartbeat_keeps_the_lease_and_only_its_own_lock_is_removed(tmp_path):
  with locks.hold(tmp_path, heartbeat=0.05) as lease:
    os.utime(lease.path, (time.time() - 100, time.time() - 100))
    time.sleep(0.5)
    assert time.time() - lease.path.stat().st_mtime < 5  # refreshed
    lease.check()
    write_lock(tmp_path, 1, 'elsewhere')  # taken over meanwhile by someone else
    time.sleep(0.3)
    assert lease.lost.is_set()  # the heartbeat saw it
    with pytest.raises(locks.LockError, match='now held by pid 1 on elsewhere while this run ran'):
      lease.check()
  assert json.loads((tmp_path / locks.NAME).read_text())['token'] == 'theirs'


# -- locks with a future timestamp, odd contents --------------------------------------------


def test_a_lock_from_the_future_expires_by_this_hosts_clock(tmp_path, monkeypatch):
  path = write_lock(tmp_path, 12345, 'some-other-host', age=-96983418)  # three years ahead
  with pytest.raises(locks.LockError, match=r'refreshed 0 s ago'):
    with locks.hold(tmp_path):
      pass
  later = time.time() + locks.LEASE + 1  # this host's clock, a lease later; the lock unchanged
  monkeypatch.setattr(locks.time, 'time', lambda: later)
  with locks.hold(tmp_path) as lease:
    assert json.loads(lease.path.read_text())['token'] != 'theirs'
  assert not path.exists() and not (tmp_path / '.lock.seen').exists()


def test_a_lock_from_the_future_that_is_refreshed_is_kept(tmp_path, monkeypatch):
  write_lock(tmp_path, 12345, 'some-other-host', age=-1000)
  with pytest.raises(locks.LockError):
    with locks.hold(tmp_path):
      pass
  write_lock(tmp_path, 12345, 'some-other-host', age=-900)  # its heartbeat: a new time
  later = time.time() + locks.LEASE + 1
  monkeypatch.setattr(locks.time, 'time', lambda: later)
  with pytest.raises(locks.LockError):  # seen changing: its lease starts again
    with locks.hold(tmp_path):
      pass


@pytest.mark.parametrize('pid', [2**70, 0, -1, 'x', None, True])
def test_a_lock_whose_pid_cannot_be_a_process_is_taken_over(tmp_path, pid, caplog):
  (tmp_path / locks.NAME).write_text(json.dumps({'pid': pid, 'host': socket.gethostname(),
                                                 'token': 'theirs'}))
  with locks.hold(tmp_path) as lease:
    assert json.loads(lease.path.read_text())['token'] != 'theirs'
  assert 'taking over the lock' in caplog.text and 'cannot be a process' in caplog.text


def test_a_lock_that_is_a_folder_is_one_line(tmp_path):
  (tmp_path / locks.NAME).mkdir()
  with pytest.raises(locks.LockError, match=r'\.lock is a folder, not a lock: remove it'):
    with locks.hold(tmp_path):
      pass
  assert (tmp_path / locks.NAME).is_dir()
