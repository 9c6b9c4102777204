"""train.py when it cannot train or is stopped: signals, data errors, bad configs and flags,
mis-set distributed start-up. Each is a real subprocess, bounded by timeouts; every failure
is one line, and a stopped run saves and releases its lock.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time

import pytest

from jdsr.io import locks
from jdsr.train import loop
from tests.helpers import (PHOTOS, ROOT, SHARP, one_error_line, one_line, photos_config, run,
                           start_train_py, train_py, wait_for)


def _last(stderr: str) -> str:
  return [line for line in stderr.strip().splitlines() if line.strip()][-1]


# -- signals ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('sig, code', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_saves_and_releases(tmp_path, sig, code):
  work, log = tmp_path / 'run', tmp_path / 'log'
  args = ['--workdir', work, '--config.phase=deblur', '--config.num_train_steps=100000',
          '--config.checkpoint_every=100000', '--config.eval_every=100000', *PHOTOS]
  proc = start_train_py(args, log)
  try:
    wait_for(proc, log, '[3] train/loss')
    proc.send_signal(sig)
    proc.wait(timeout=300)
  finally:
    proc.kill()
  stderr = log.read_text()
  assert proc.returncode == code, stderr[-3000:]
  last = one_line(stderr)
  step = int(last.split(' at step ')[1].split(',')[0])
  assert last == (f'train.py: stopped by {signal.Signals(sig).name} at step {step}, checkpoint '
                  f'{work / "checkpoints" / str(step)} saved; run the same command again to resume')
  assert (work / 'checkpoints' / str(step)).is_dir() and not (work / locks.NAME).exists()
  # Requeued, the same command resumes there: tests/e2e/test_multiprocess.py, with a changed
  # learning rate named in one warning.


@pytest.mark.slow
def test_sigterm_while_the_run_starts_is_one_line_and_releases_the_lock(tmp_path):
  log = tmp_path / 'log'
  work = tmp_path / 'run'
  proc = start_train_py(['--workdir', work, '--config.num_train_steps=50', *PHOTOS], log)
  end = time.monotonic() + 120
  while not (work / locks.NAME).exists() and time.monotonic() < end:  # the lock is taken
    time.sleep(0.05)
  proc.send_signal(15)
  proc.wait(timeout=300)
  assert proc.returncode == 143, log.read_text()[-3000:]
  assert one_line(log.read_text()).startswith('train.py: stopped by SIGTERM at step 0')
  assert not (work / locks.NAME).exists()


# -- data errors, bad configs, usage errors ---------------------------------------------------


@pytest.mark.slow
def test_a_data_error_ends_training_with_one_line_and_no_hang(tmp_path):
  photos = tmp_path / 'photos'
  shutil.copytree(SHARP, photos)
  (photos / 'zz_truncated.png').write_bytes((SHARP / 'astronaut.png').read_bytes()[:3000])
  result = run('train.py', '--config', 'configs/tiny.py', '--workdir', tmp_path / 'w',
               '--config.phase=deblur', '--config.data.source=photos',
               f'--config.data.photos_dir={photos}', f'--config.data.val_photos_dir={SHARP}',
               timeout=300)  # it used to wait forever on a lock after the traceback
  one_error_line(result, 'data error', 'zz_truncated.png', 'truncated')


@pytest.mark.slow
def test_bad_configs_are_one_line(tmp_path):
  (tmp_path / 'notes.md').write_text('# not python ×\n')
  for config in ('nope.py', tmp_path / 'notes.md'):
    one_error_line(run('train.py', '--config', config, '--workdir', tmp_path / 'w'),
                   'cannot load the config file')
  one_error_line(run('eval.py', '--config', 'nope.py'), 'cannot load the config file')
  for field, value in (('learning_rate', 0.0), ('batch_size', 0), ('num_train_steps', -1)):
    config = photos_config(SHARP, SHARP, **{field: value})
    with pytest.raises(ValueError, match=f'config.{field}=.* must be positive'):
      loop.train_and_evaluate(config, tmp_path / field)
  one_error_line(run('train.py', '--config', 'configs/tiny.py', '--workdir', tmp_path / 'w',
                     '--config.learning_rate=0'), 'learning_rate=0.0 must be positive')


@pytest.mark.slow
@pytest.mark.parametrize('argv, message', [
    (['--workdir', 'w', '--config.foo=1'],
     "--config.foo: the config (configs/tiny.py) has no field 'foo'"),
    (['--workdir', 'w', '--config.data.nothing=1'],
     "--config.data.nothing: the config (configs/tiny.py) has no field 'data.nothing'"),
    ([], 'Flag --workdir must have a value other than None'),
    (['--workdir', 'w', 'stray'], 'unexpected arguments: stray'),
])
def test_train_py_usage_errors_exit_2_in_one_line(tmp_path, argv, message):
  result = subprocess.run(train_py(*argv), cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert _last(result.stderr).startswith('train.py: error: ') and message in _last(result.stderr)


# -- distributed start-up ---------------------------------------------------------------------


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_coordinator_is_a_bounded_wait_then_one_line(tmp_path):
  address = f'127.0.0.1:{_free_port()}'  # nothing listens there
  start = time.monotonic()
  result = subprocess.run(
      train_py('--workdir', tmp_path / 'run', '--distributed', f'--coordinator_address={address}',
               '--num_processes=2', '--process_id=1', '--coordinator_timeout=12', *PHOTOS),
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert time.monotonic() - start < 60
  assert result.returncode == 1
  assert f'waiting for the coordinator at {address}' in result.stderr  # progress
  assert _last(result.stderr) == (
      f'train.py: error: could not reach the coordinator at {address} and the other processes '
      'within 12 s (--coordinator_timeout); is process 0 running there, and are all processes '
      'started?')


@pytest.mark.slow
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
  result = subprocess.run(train_py('--workdir', tmp_path / 'run', *flags), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert _last(result.stderr).startswith(f'train.py: error: {message}'), result.stderr[-2000:]
