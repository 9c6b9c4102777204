"""The third round of trying to break jdsr: locks, distributed start-up, flags and messages.

Each test fails without its fix; hangs are bounded by timeouts.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest

from jdsr.io import locks
from tests.test_hostile import PHOTOS, _lock, _one_line, _start, _train_py, _wait_for

ROOT = pathlib.Path(__file__).parents[1]


# -- (7), (8): locks with a future timestamp, odd contents ----------------------------------


def test_a_lock_from_the_future_expires_by_this_hosts_clock(tmp_path, monkeypatch):
  path = _lock(tmp_path, 12345, 'some-other-host', age=-96983418)  # three years ahead
  with pytest.raises(locks.LockError, match=r'refreshed 0 s ago'):
    with locks.hold(tmp_path):
      pass
  later = time.time() + locks.LEASE + 1  # this host's clock, a lease later; the lock unchanged
  monkeypatch.setattr(locks.time, 'time', lambda: later)
  with locks.hold(tmp_path) as lease:
    assert json.loads(lease.path.read_text())['token'] != 'theirs'
  assert not path.exists() and not (tmp_path / '.lock.seen').exists()


def test_a_lock_from_the_future_that_is_refreshed_is_kept(tmp_path, monkeypatch):
  _lock(tmp_path, 12345, 'some-other-host', age=-1000)
  with pytest.raises(locks.LockError):
    with locks.hold(tmp_path):
      pass
  _lock(tmp_path, 12345, 'some-other-host', age=-900)  # its heartbeat: a new time
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


# -- (4), (5): distributed start-up ---------------------------------------------------------


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_coordinator_is_a_bounded_wait_then_one_line(tmp_path):
  address = f'127.0.0.1:{_free_port()}'  # nothing listens there
  start = time.monotonic()
  result = subprocess.run(
      _train_py('--workdir', tmp_path / 'run', '--distributed', f'--coordinator_address={address}',
                '--num_processes=2', '--process_id=1', '--coordinator_timeout=12', *PHOTOS),
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert time.monotonic() - start < 60
  assert result.returncode == 1
  assert f'waiting for the coordinator at {address}' in result.stderr  # progress
  assert _last(result.stderr) == (
      f'train.py: error: could not reach the coordinator at {address} and the other processes '
      'within 12 s (--coordinator_timeout); is process 0 running there, and are all processes '
      'started?')


def _last(stderr: str) -> str:
  return [line for line in stderr.strip().splitlines() if line.strip()][-1]


@pytest.mark.parametrize('flags, message', [
    (['--distributed', '--num_processes=2', '--process_id=5', '--coordinator_address=127.0.0.1:1'],
     '--process_id must be in 0..1 (--num_processes 2), got 5'),
    (['--distributed', '--num_processes=2'],
     '--distributed: give all three of --coordinator_address, --num_processes, --process_id or '
     'none'),
    (['--distributed', '--coordinator_timeout=nan', '--coordinator_address=127.0.0.1:1',
      '--num_processes=2', '--process_id=1'],
     '--coordinator_timeout must be a number of seconds above 0, got nan'),
])
def test_a_mis_set_distributed_run_is_one_line_naming_the_flag(tmp_path, flags, message):
  result = subprocess.run(_train_py('--workdir', tmp_path / 'run', *flags), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert _last(result.stderr).startswith(f'train.py: error: {message}'), result.stderr[-2000:]


# -- (15), (16): flags and exit statuses ----------------------------------------------------


@pytest.mark.parametrize('argv, message', [
    (['--workdir', 'w', '--config.foo=1'],
     "--config.foo: the config (configs/tiny.py) has no field 'foo'"),
    (['--workdir', 'w', '--config.data.nothing=1'],
     "--config.data.nothing: the config (configs/tiny.py) has no field 'data.nothing'"),
    ([], 'Flag --workdir must have a value other than None'),
    (['--workdir', 'w', 'stray'], 'unexpected arguments: stray'),
])
def test_train_py_usage_errors_exit_2_in_one_line(tmp_path, argv, message):
  result = subprocess.run(_train_py(*argv), cwd=tmp_path if False else ROOT, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert _last(result.stderr).startswith('train.py: error: ') and message in _last(result.stderr)


def test_eval_py_usage_errors_exit_2(tmp_path):
  for argv in (['stray'], ['--config.nothing=1']):
    result = subprocess.run([sys.executable, 'eval.py', *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    assert _last(result.stderr).startswith('eval.py: error: ')


# -- (9): SIGTERM while the run starts -------------------------------------------------------


@pytest.mark.slow
def test_sigterm_while_the_run_starts_is_one_line_and_releases_the_lock(tmp_path):
  log = tmp_path / 'log'
  work = tmp_path / 'run'
  proc = _start(['--workdir', work, '--config.num_train_steps=50', *PHOTOS], log)
  end = time.monotonic() + 120
  while not (work / locks.NAME).exists() and time.monotonic() < end:  # the lock is taken
    time.sleep(0.05)
  proc.send_signal(15)
  proc.wait(timeout=300)
  assert proc.returncode == 143, log.read_text()[-3000:]
  assert _one_line(log.read_text()).startswith('train.py: stopped by SIGTERM at step 0')
  assert not (work / locks.NAME).exists()


# -- (6): a deleted lock -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_whose_lock_is_taken_stops_without_writing_over_the_other(tmp_path):
  work = tmp_path / 'run'
  args = ['--workdir', work, '--config.num_train_steps=100000', '--config.checkpoint_every=1',
          '--config.log_every=1', *PHOTOS]
  log_a = tmp_path / 'a.log'
  a = _start(args, log_a)
  try:
    _wait_for(a, log_a, 'train/loss')  # training
    (work / locks.NAME).unlink()  # a careless user
    log_b = tmp_path / 'b.log'
    b = _start(args, log_b)
    try:
      _wait_for(b, log_b, 'train/loss')  # B trains: A's unfinished checkpoints were left alone
      a.wait(timeout=120)
      assert a.returncode == 1
      last = _one_line(log_a.read_text())  # A saw it removed, or already B's
      assert (last.startswith(f'train.py: error: {work / locks.NAME} was now held by pid {b.pid}')
              or last.startswith(f'train.py: error: {work / locks.NAME} was removed')), last
      assert last.endswith('stopping without writing anything more, so as not to harm the other '
                           'run'), last
      assert b.poll() is None  # B goes on
    finally:
      b.terminate()
      b.wait(timeout=300)
    assert b.returncode == 143, log_b.read_text()[-3000:]
  finally:
    a.kill()
    a.wait()


# -- (10), (11): damaged checkpoints -----------------------------------------------------------


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> pathlib.Path:
  """A training run with checkpoints at steps 1 and 2, made once; tests damage copies of it."""
  work = tmp_path_factory.mktemp('trained') / 'run'
  result = subprocess.run(_train_py('--workdir', work, '--config.num_train_steps=2',
                                    '--config.checkpoint_every=1', *PHOTOS),
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(p.name for p in (work / 'checkpoints').iterdir()) == ['1', '2']
  return work


def _two_checkpoints(trained: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
  work = tmp_path / 'run'
  shutil.copytree(trained, work, symlinks=True)
  for lock in work.glob('.lock*'):
    lock.unlink()
  return work


def _make_nan(checkpoint: pathlib.Path) -> None:
  """Checkpoint 2 rewritten with NaN parameters, as a damaged disk could decode it."""
  import numpy as np
  import orbax.checkpoint as ocp

  items = ('params', 'opt_state')
  with ocp.CheckpointManager(checkpoint.parent) as manager:
    raw = manager.restore(2, args=ocp.args.Composite(
        **{k: ocp.args.StandardRestore() for k in items},
        train=ocp.args.JsonRestore(), model_config=ocp.args.JsonRestore()))
  nan = {k: __import__('jax').tree.map(lambda a: np.full_like(np.asarray(a), np.nan)
                                       if np.issubdtype(np.asarray(a).dtype, np.floating)
                                       else np.asarray(a), raw[k]) for k in items}
  import shutil
  shutil.rmtree(checkpoint)
  with ocp.CheckpointManager(checkpoint.parent) as manager:
    manager.save(2, args=ocp.args.Composite(
        **{k: ocp.args.StandardSave(nan[k]) for k in items},
        train=ocp.args.JsonSave(raw['train']), model_config=ocp.args.JsonSave(raw['model_config'])))


@pytest.mark.slow
def test_a_checkpoint_of_nan_is_not_resumed_from(trained, tmp_path):
  work = _two_checkpoints(trained, tmp_path)
  _make_nan(work / 'checkpoints' / '2')
  result = subprocess.run(_train_py('--workdir', work, '--config.num_train_steps=3',
                                    '--config.checkpoint_every=1', *PHOTOS),
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'{work / "checkpoints" / "2"} holds NaN or inf values' in result.stderr
  assert 'resuming from step 1 instead' in result.stderr
  assert 'Done:' in result.stdout and 'at step 3' in result.stdout
  assert (work / 'checkpoints' / 'damaged-2').is_dir()  # kept, out of the way


@pytest.mark.slow
def test_a_checkpoint_missing_an_array_file_is_named_in_one_line(trained, tmp_path):
  work = _two_checkpoints(trained, tmp_path)
  for step in ('1', '2'):
    for data in (work / 'checkpoints' / step / 'params' / 'ocdbt.process_0' / 'd').iterdir():
      data.unlink()  # every array file of the parameters
  result = subprocess.run(_train_py('--workdir', work, '--config.num_train_steps=3', *PHOTOS),
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1
  assert 'Event loop is closed' not in result.stderr
  last = _one_line(result.stderr)
  assert last.startswith('train.py: error: no checkpoint can be resumed from: '
                         f'{work / "checkpoints" / "2"} cannot be read (params/'), last
  assert 'is missing' in last and str(work / 'checkpoints' / '1') in last
