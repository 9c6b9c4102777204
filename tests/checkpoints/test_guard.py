"""The run guard (jdsr.checkpoints.training) on a small state, with no training run."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdsr
from jdsr.checkpoints import training as guard_lib
from jdsr.errors import CheckpointError, TrainingError
from jdsr.io import locks
from tests import helpers

CONFIG = jdsr.tiny_model_config()
RECORD = {'phase': 'deblur', 'seed': 0, 'batch_size': 2}


def _state(value: float):
  # Random, and large enough that orbax writes the arrays to data files, not inline.
  noise = np.random.default_rng(0).random((64, 1024), np.float32)
  params = {'conv': {'kernel': jnp.asarray(value * (1 + noise))}, 'act': jnp.full((1,), value)}
  opt_state = {'mu': jnp.asarray(value * noise[:4]), 'count': jnp.asarray(7, jnp.int32)}
  return params, opt_state


def _abstract():
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(0.0))


def _save(workdir, *steps_values, keep: int = 5) -> None:
  with guard_lib.RunGuard(workdir, keep=keep) as guard:
    for step, value in steps_values:
      params, opt_state = _state(value)
      guard.save(step, params, dict(CONFIG), opt_state=opt_state,
                 train={**RECORD, 'step': step})


def _resume(workdir, expect=RECORD, config=CONFIG):
  with guard_lib.RunGuard(workdir, keep=5) as guard:
    return guard.resume(*_abstract(), expect, config)


def test_resume_gives_the_latest_checkpoint_as_saved(tmp_path):
  _save(tmp_path, (1, 1.0), (2, 2.0))
  params, opt_state, train = _resume(tmp_path)
  assert train['step'] == 2
  np.testing.assert_array_equal(params['conv']['kernel'], _state(2.0)[0]['conv']['kernel'])
  assert int(opt_state['count']) == 7
  assert jdsr.checkpoints.kind(tmp_path) == 'workdir'  # jdsr.load reads what it wrote


def test_a_checkpoint_of_nan_is_moved_aside_and_the_one_before_resumed(tmp_path, caplog):
  _save(tmp_path, (1, 1.0), (2, np.nan))
  with caplog.at_level(logging.WARNING):
    params, _, train = _resume(tmp_path)
  assert train['step'] == 1 and float(params['act'][0]) == 1.0
  assert f'{tmp_path / "checkpoints" / "2"} holds NaN or inf values' in caplog.text
  assert 'resuming from step 1 instead' in caplog.text
  assert (tmp_path / 'checkpoints' / 'damaged-2').is_dir()  # kept, out of the way
  assert jdsr.checkpoints.steps(tmp_path / 'checkpoints') == [1]


def test_a_checkpoint_missing_an_array_file_is_named(tmp_path, caplog):
  _save(tmp_path, (1, 1.0), (2, 2.0))
  for step in ('1', '2'):
    for data in (tmp_path / 'checkpoints' / step / 'params' / 'ocdbt.process_0' / 'd').iterdir():
      data.unlink()  # every array file of the parameters
  with pytest.raises(TrainingError) as raised:
    _resume(tmp_path)
  message = str(raised.value)
  assert '\n' not in message
  assert message.startswith('no checkpoint can be resumed from: '
                            f'{tmp_path / "checkpoints" / "2"} cannot be read (params/ holds an '
                            "array that cannot be read, conv.kernel: a data file in params/ is "
                            'missing or damaged)'), message
  assert str(tmp_path / 'checkpoints' / '1') in message
  assert 'Event loop is closed' not in caplog.text
  assert sorted(p.name for p in (tmp_path / 'checkpoints').iterdir()) == ['damaged-1', 'damaged-2']


def test_a_checkpoint_missing_an_item_says_which(tmp_path):
  _save(tmp_path, (1, 1.0))
  shutil.rmtree(tmp_path / 'checkpoints' / '1' / 'opt_state')
  with pytest.raises(TrainingError, match=r'cannot be read \(its opt_state/ is missing\)'):
    _resume(tmp_path)


def test_another_run_or_another_model_is_refused_and_nothing_is_moved(tmp_path):
  _save(tmp_path, (1, 1.0))
  with pytest.raises(TrainingError, match='holds a run with seed=0, the config says 1'):
    _resume(tmp_path, expect={**RECORD, 'seed': 1})
  with pytest.raises(CheckpointError, match='saved for a model with n_feat=8'):
    other = jdsr.tiny_model_config()
    other.n_feat = 16
    _resume(tmp_path, config=other)
  assert jdsr.checkpoints.steps(tmp_path / 'checkpoints') == [1]


def test_no_room_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
  _save(tmp_path, (1, 1.0))
  before = sorted(p.name for p in (tmp_path / 'checkpoints').iterdir())
  usage = shutil.disk_usage(tmp_path)
  monkeypatch.setattr(guard_lib.shutil, 'disk_usage',
                      lambda _: usage._replace(free=512 * 1024))
  with pytest.raises(TrainingError) as raised:
    _save(tmp_path, (2, 2.0))
  assert str(raised.value).startswith(f'no room for checkpoint 2 in {tmp_path / "checkpoints"}')
  assert 'MiB are free; the checkpoints before it are intact' in str(raised.value)
  assert sorted(p.name for p in (tmp_path / 'checkpoints').iterdir()) == before


def test_a_full_disk_is_one_line_and_harms_no_checkpoint(small_disk):
  work = small_disk / 'run'
  _save(work, (1, 1.0))
  saved = helpers.files(work / 'checkpoints' / '1')
  free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
  (small_disk / 'filler').write_bytes(bytes(max(free - 512 * 1024, 0)))
  with pytest.raises(TrainingError) as raised:
    _save(work, (2, 2.0))
  assert str(raised.value).startswith(f'no room for checkpoint 2 in {work / "checkpoints"}: ')
  assert 'MiB are free' in str(raised.value)
  assert helpers.files(work / 'checkpoints' / '1') == saved
  assert jdsr.checkpoints.steps(work / 'checkpoints') == [1]


def test_a_write_that_fails_midway_is_one_training_error(tmp_path, monkeypatch):
  with guard_lib.RunGuard(tmp_path, keep=5) as guard:
    def failing():
      raise ValueError('RESOURCE_EXHAUSTED: Error writing "x"\nFailed to write: No space left')
    monkeypatch.setattr(guard.periodic, 'wait_until_finished', failing)
    with pytest.raises(TrainingError) as raised:
      guard._written(guard.periodic, 6, lambda: None)
    monkeypatch.undo()
  assert str(raised.value) == (f'cannot write checkpoint 6 in {tmp_path / "checkpoints"} '
                               '(ValueError: RESOURCE_EXHAUSTED: Error writing "x"); the '
                               'checkpoints before it are intact')


def test_a_run_whose_lock_is_taken_writes_nothing_more(tmp_path):
  with guard_lib.lock(tmp_path) as lease:
    guard = guard_lib.RunGuard(tmp_path, keep=5, lease=lease)
    try:
      params, opt_state = _state(1.0)
      guard.save(1, params, dict(CONFIG), opt_state=opt_state, train={**RECORD, 'step': 1})
      other = json.loads(lease.path.read_text())
      lease.path.write_text(json.dumps({**other, 'token': 'another run'}))  # taken
      with pytest.raises(TrainingError, match='stopping without writing anything more'):
        guard.save(2, params, dict(CONFIG), opt_state=opt_state, train={**RECORD, 'step': 2})
      with pytest.raises(TrainingError, match='stopping without writing anything more'):
        guard.save_best(2, params, dict(CONFIG), {'val/psnr': 30.0})
    finally:
      guard.close()
  assert jdsr.checkpoints.steps(tmp_path / 'checkpoints') == [1]
  assert jdsr.checkpoints.steps(tmp_path / 'best') == []


def test_a_second_live_run_is_refused_before_anything_is_written(tmp_path):
  live = subprocess.Popen(['sleep', '60'])
  try:
    (tmp_path / locks.NAME).write_text(json.dumps(
        {'pid': live.pid, 'host': socket.gethostname(), 'started': 'earlier'}))
    with pytest.raises(TrainingError, match=rf'in use by another run \(pid {live.pid}'):
      with guard_lib.lock(tmp_path):
        pass
  finally:
    live.kill()
    live.wait()
  assert sorted(p.name for p in tmp_path.iterdir()) == [locks.NAME]
  with guard_lib.lock(tmp_path):  # its holder gone, the lock is taken over
    pass
  assert not (tmp_path / locks.NAME).exists()  # and released


def test_best_keeps_the_highest_psnr(tmp_path):
  with guard_lib.RunGuard(tmp_path, keep=5) as guard:
    for step, psnr in ((1, 20.0), (2, 25.0), (3, 22.0)):
      guard.save_best(step, _state(float(step))[0], dict(CONFIG), {'val/psnr': psnr})
  assert jdsr.checkpoints.steps(tmp_path / 'best') == [2]


def test_stale_temporary_checkpoints_are_removed_and_live_ones_kept(tmp_path):
  stale = tmp_path / 'checkpoints' / '3.orbax-checkpoint-tmp-1'
  live = tmp_path / 'best' / '4.orbax-checkpoint-tmp-2'
  for tmp in (stale, live):
    (tmp / 'params').mkdir(parents=True)
    (tmp / 'params' / 'data').write_bytes(b'\0' * 10)
  old = time.time() - locks.LEASE - 10
  for path in (stale, stale / 'params', stale / 'params' / 'data'):
    os.utime(path, (old, old))
  guard_lib.remove_stale_tmp(tmp_path / 'checkpoints')
  guard_lib.remove_stale_tmp(tmp_path / 'best')
  assert not stale.exists() and live.exists()
