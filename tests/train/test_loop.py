"""The training loop (jdsr.train.loop) in this process: what a step is fed, resuming, NaN, devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboard.backend.event_processing import event_file_loader

import jdsr
from configs import tiny
from jdsr.data import sources
from jdsr.train import compiling, loop, phases as phases_lib
from tests import helpers
from tests.helpers import ROOT


def _config(phase: str, **overrides):
  return helpers.photos_config(helpers.SHARP, helpers.SHARP, phase, **overrides)


@pytest.mark.slow
def test_the_step_is_fed_the_logged_learning_rates(tmp_path, monkeypatch, caplog):
  """The rates the compiled step receives at each step are the schedule's, as logged."""
  config = _config('joint', num_train_steps=3, log_every=1, eval_every=100,
                   checkpoint_every=100, learning_rate=2e-4, sr_learning_rate=6e-4,
                   data={'val_count': 0})
  fed, programs = [], compiling.programs

  def spying(*args):
    run = programs(*args)

    def step(state, batch, rates):
      fed.append({group: float(rate) for group, rate in rates.items()})
      return run.step(state, batch, rates)
    return compiling.Programs(init=run.init, step=step, predict=run.predict)

  monkeypatch.setattr(compiling, 'programs', spying)
  with caplog.at_level('INFO'):
    loop.train_and_evaluate(config, tmp_path)
  # The first step's compiling is said before it starts (it takes a minute on a CPU), and after.
  said = [r.getMessage() for r in caplog.records]
  assert any(m.startswith('step 1 of 3: compiling the training step first') for m in said), said
  assert any(m.startswith('compiled the training step in ') for m in said), said
  logged = {}
  for path in tmp_path.glob('events.out.tfevents.*'):
    for event in event_file_loader.EventFileLoader(str(path)).Load():
      for value in event.summary.value:
        if value.tag.startswith('train/lr_'):
          logged.setdefault(event.step, {})[value.tag[len('train/lr_'):]] = helpers.scalar(value)
  schedules = phases_lib.learning_rates(config)
  expected = [{g: float(np.float32(schedules[g](step - 1))) for g in ('deblur', 'sr')}
              for step in (1, 2, 3)]
  assert fed == expected
  assert [logged[step] for step in (1, 2, 3)] == expected
  assert fed[0] == {'deblur': pytest.approx(2e-4), 'sr': pytest.approx(6e-4)}


# -- the three phases, chained ----------------------------------------------------


class _Interrupt:
  """Host batches from the real pipeline that raise KeyboardInterrupt after `after` of them."""

  def __init__(self, config, after: int | None):
    self.config, self.after = config, after

  def __call__(self, start: int):
    from jdsr.data import pipeline
    source = sources.train_source(self.config)
    batches = pipeline.as_numpy(pipeline.train_batches(
        source, batch_size=self.config.batch_size, seed=self.config.seed, start=start,
        lr_size=self.config.data.lr_size, scale=4))
    for i, batch in enumerate(batches):
      if self.after is not None and i == self.after:
        raise KeyboardInterrupt
      yield batch


@pytest.mark.slow
def test_interrupted_and_resumed_equals_straight(tmp_path):
  config = _config('joint', checkpoint_every=100, eval_every=100)
  straight = loop.train_and_evaluate(config, tmp_path / 'straight')
  with pytest.raises(KeyboardInterrupt):
    loop.train_and_evaluate(config, tmp_path / 'resumed', batches=_Interrupt(config, 2))
  ckpts = tmp_path / 'resumed' / 'checkpoints'
  assert ocp.utils.checkpoint_steps(ckpts) == [2]  # saved on the way out
  # A save killed halfway leaves a temporary directory: it must not be taken for a checkpoint.
  (ckpts / '3.orbax-checkpoint-tmp' / 'params').mkdir(parents=True)
  (ckpts / '3.orbax-checkpoint-tmp' / 'params' / 'garbage').write_bytes(b'\0' * 100)
  # Resuming takes everything from the checkpoint: where the phase started is not read again.
  config_now = config.copy_and_resolve_references()
  config_now.init_from = str(tmp_path / 'deleted_since')
  resumed = loop.train_and_evaluate(config_now, tmp_path / 'resumed')
  assert int(resumed.state.step) == int(straight.state.step) == 4
  assert not helpers.changed(helpers.flat(straight.state.params), helpers.flat(resumed.state.params))
  assert not helpers.changed(helpers.flat(straight.state.opt_state), helpers.flat(resumed.state.opt_state))
  saved = json.loads((ckpts / '4' / 'train' / 'metadata').read_text())
  assert saved['data_position'] == 4 * config.batch_size and saved['seed'] == config.seed


@pytest.mark.slow
def test_resume_refuses_another_run(tmp_path):
  config = _config('deblur', data={'val_count': 0})
  loop.train_and_evaluate(config, tmp_path)
  other = _config('deblur', seed=1)
  with pytest.raises(loop.TrainingError, match='seed=0'):
    loop.train_and_evaluate(other, tmp_path)


@pytest.mark.slow
def test_nan_loss_stops_with_last_good_checkpoint(tmp_path):
  config = _config('deblur', data={'val_count': 0})

  def batches(start):
    rng = np.random.default_rng(start)
    for step in range(start // config.batch_size, 100):
      batch = {key: rng.random((2, 16 * s, 16 * s, 3), np.float32)
               for key, s in (('blur_lr', 1), ('sharp_lr', 1), ('sharp_hr', 4))}
      if step == 2:
        batch['blur_lr'][0, 0, 0, 0] = np.nan
      yield batch

  with pytest.raises(loop.TrainingError, match=r'loss is nan at step 3.*checkpoints/2'):
    loop.train_and_evaluate(config, tmp_path, batches=batches)
  assert ocp.utils.checkpoint_steps(tmp_path / 'checkpoints') == [2]
  model = jdsr.load(tmp_path / 'checkpoints' / '2')
  assert all(np.isfinite(v).all() for v in helpers.params_of(model).values())


# -- several devices --------------------------------------------------------------

_ONE_STEP = textwrap.dedent('''
    import sys, numpy as np, jax
    sys.path.insert(0, {root!r})
    from configs import tiny
    from jdsr.train import loop
    config = tiny.get_config()
    config.phase, config.batch_size, config.num_train_steps = 'sr', 3, 1
    config.microbatches = int(sys.argv[4])
    config.data.val_count = 0
    def batches(start):
      rng = np.random.default_rng(0)
      while True:
        yield {{k: rng.random((3, 16 * s, 16 * s, 3), np.float32)
               for k, s in (('blur_lr', 1), ('sharp_lr', 1), ('sharp_hr', 4))}}
    result = loop.train_and_evaluate(config, sys.argv[1], batches=batches)
    assert jax.device_count() == int(sys.argv[3]), jax.devices()
    leaves = jax.tree_util.tree_leaves_with_path(result.state.params)
    np.savez(sys.argv[2], **{{jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}})
''')


@pytest.mark.slow
def test_the_paper_batch_of_3_on_any_device_count_gives_one_device_update(tmp_path):
  """Batch 3 on 1 device; on 4 (padded to 4, weight 0); on 2 in 3 microbatches (padded to 6)."""
  script = tmp_path / 'one_step.py'
  script.write_text(_ONE_STEP.format(root=str(ROOT)))
  results = {}
  for devices, microbatches in ((1, 1), (4, 1), (2, 3)):
    env = dict(os.environ, JAX_PLATFORMS='cpu',
               XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
    out = tmp_path / f'{devices}x{microbatches}.npz'
    subprocess.run([sys.executable, str(script), str(tmp_path / f'w{devices}x{microbatches}'),
                    str(out), str(devices), str(microbatches)], env=env, check=True,
                   capture_output=True, timeout=600)
    results[devices, microbatches] = dict(np.load(out))
  for key, value in results[1, 1].items():
    for setting in ((4, 1), (2, 3)):
      np.testing.assert_allclose(results[setting][key], value, rtol=1e-5, atol=1e-6,
                                 err_msg=f'{setting} {key}')
  assert helpers.changed(results[1, 1], helpers.params_of(jdsr.build_model(tiny.get_config().model, 0)))  # it trained
