"""The training loop (jdsr.train.loop.train_and_evaluate, in-process) when training goes wrong:
diverged weights, NaN between log steps, images smaller than the crop, a model of another size,
a workdir held by another run, a lock taken while the run trains.

Nothing bad is ever saved, and nothing is written over another run's work.
"""

from __future__ import annotations

import json
import socket
import subprocess

import numpy as np
import pytest

import jdsr
from jdsr import checkpoints
from jdsr.io import locks
from jdsr.train import loop
from tests.helpers import SHARP, photos_config


def _photos_config(**overrides):
  return photos_config(SHARP, SHARP, **overrides)


# -- diverged weights are never saved, never scored -------------------------------------------


@pytest.mark.slow
def test_diverged_weights_are_never_saved(tmp_path):
  config = _photos_config(learning_rate=1e30, checkpoint_every=1, eval_every=1)
  with pytest.raises(loop.TrainingError, match='NaN or inf.*not saved.*checkpoint is none'):
    loop.train_and_evaluate(config, tmp_path)
  assert checkpoints.steps(tmp_path / 'checkpoints') == []
  assert checkpoints.steps(tmp_path / 'best') == []
  # Without validation at that step, the check before saving catches it.
  config = _photos_config(learning_rate=1e30, checkpoint_every=1, eval_every=100)
  with pytest.raises(loop.TrainingError, match='model outputs NaN or inf.*not saved'):
    loop.train_and_evaluate(config, tmp_path / 'b')
  assert checkpoints.steps(tmp_path / 'b' / 'checkpoints') == []


@pytest.mark.slow
def test_a_nan_between_log_steps_is_caught_before_anything_is_saved(tmp_path):
  """The loop reads the device back only at log, validation and checkpoint steps."""
  config = _photos_config(log_every=4, checkpoint_every=2, eval_every=4)
  config.data.val_count = 0

  def batches(start):
    rng = np.random.default_rng(start)
    for step in range(start // config.batch_size, 100):
      batch = {key: rng.random((2, 16 * s, 16 * s, 3), np.float32)
               for key, s in (('blur_lr', 1), ('sharp_lr', 1), ('sharp_hr', 4))}
      if step == 2:  # the third step
        batch['blur_lr'][0, 0, 0, 0] = np.nan
      yield batch

  with pytest.raises(loop.TrainingError, match=r'loss is nan at step 3.*checkpoints/2'):
    loop.train_and_evaluate(config, tmp_path, batches=batches)
  assert checkpoints.steps(tmp_path / 'checkpoints') == [2]


# -- data and models that do not fit ----------------------------------------------------------


@pytest.mark.slow
def test_an_image_smaller_than_the_crop_names_the_file(tmp_path):
  config = _photos_config(data={'lr_size': 1024})
  config.data.val_count = 0
  with pytest.raises(loop.TrainingError, match=r'data error: [a-z]+\.png: .*smaller than the '
                     r'1024x1024 crop'):
    loop.train_and_evaluate(config, tmp_path)


@pytest.mark.slow
def test_resuming_with_another_model_size_is_one_line(tmp_path):
  loop.train_and_evaluate(_photos_config(num_train_steps=2), tmp_path)
  bigger = _photos_config(num_train_steps=4)
  bigger.model.n_feat = 16
  with pytest.raises(jdsr.CheckpointError, match=r'checkpoints/2: saved for a model with n_feat=8'):
    loop.train_and_evaluate(bigger, tmp_path)


# -- the workdir's lock -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_run_in_a_workdir_is_refused_and_a_stale_lock_taken_over(tmp_path):
  config = _photos_config(num_train_steps=2)
  config.data.val_count = 0
  live = subprocess.Popen(['sleep', '60'])
  try:
    (tmp_path / '.lock').write_text(json.dumps(
        {'pid': live.pid, 'host': socket.gethostname(), 'started': 'earlier'}))
    with pytest.raises(loop.TrainingError, match=rf'in use by another run \(pid {live.pid}'):
      loop.train_and_evaluate(config, tmp_path)
    assert not (tmp_path / 'checkpoints').exists()  # refused before touching anything
  finally:
    live.kill()
    live.wait()
  # The holder is gone now: its lock is stale and is taken over.
  result = loop.train_and_evaluate(config, tmp_path)
  assert int(result.state.step) == 2
  assert not (tmp_path / '.lock').exists()  # released


@pytest.mark.slow
def test_a_run_whose_lock_is_taken_stops_without_writing_over_the_other(tmp_path):
  """Another run takes the lock while this one trains (its batch 3 is being read): this run
  saves nothing more, and leaves the other's lock where it is."""
  config = _photos_config(num_train_steps=6, checkpoint_every=1, data={'val_count': 0})
  lock = tmp_path / locks.NAME

  def batches(start):
    rng = np.random.default_rng(start)
    for step in range(start // config.batch_size, 100):
      if step == 2:  # asked for its third batch, after checkpoint 2: another run takes the lock
        holder = json.loads(lock.read_text())
        holder['token'] = 'another run'
        lock.write_text(json.dumps(holder))
      yield {key: rng.random((2, 16 * s, 16 * s, 3), np.float32)
             for key, s in (('blur_lr', 1), ('sharp_lr', 1), ('sharp_hr', 4))}

  with pytest.raises(loop.TrainingError) as e:
    loop.train_and_evaluate(config, tmp_path, batches=batches)
  message = str(e.value)
  assert 'was now held by pid' in message, message
  assert message.endswith('stopping without writing anything more, so as not to harm the other '
                          'run'), message
  assert checkpoints.steps(tmp_path / 'checkpoints') == [1, 2]  # none after the takeover
  assert json.loads(lock.read_text())['token'] == 'another run'  # the other's lock is left alone
