"""Training (jdsr.train.loop, train.py): freezing per phase, exact resume, NaN stop, devices, CLI."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboard.backend.event_processing import event_file_loader
from flax import nnx

import jdsr
from configs import tiny
from jdsr.train import phases as phases_lib, loop
from jdsr.data import reds, sources
from tests import training

pytestmark = pytest.mark.slow  # end-to-end: see pyproject.toml

ROOT = pathlib.Path(__file__).parents[1]
PHOTOS = ROOT / 'samples' / 'sharp'


@pytest.fixture(scope='module')
def photos(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
  """Three training photos and two validation photos (links to the sample photos)."""
  root = tmp_path_factory.mktemp('photos')
  (root / 'train').mkdir()
  (root / 'val').mkdir()
  for name in ('astronaut.png', 'coffee.png', 'rocket.png'):
    (root / 'train' / name).symlink_to(PHOTOS / name)
  for name in ('chelsea.png', 'rocket.png'):
    (root / 'val' / name).symlink_to(PHOTOS / name)
  return root / 'train', root / 'val'


def _config(photos, phase: str, **overrides):
  return training.photos_config(*photos, phase, **overrides)


def _flat(params) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


def _params(model) -> dict[str, np.ndarray]:
  return _flat(nnx.state(model, nnx.Param))


def _changed(before: dict, after: dict) -> set[str]:
  assert before.keys() == after.keys()
  return {k for k in before if not np.array_equal(before[k], after[k])}


def _is_sr(key: str) -> bool:
  return key.startswith("['SRNet_")


def _assert_trained(changed: set[str], trained: set[str]) -> None:
  """Only `trained` parameters changed, and nearly all of them.

  Not all: in the tiny model a CA layer's two-unit ReLU can be dead for a
  whole batch, and then its two convs get no gradient in these few steps.
  """
  assert changed <= trained, sorted(changed - trained)
  assert len(changed) >= 0.9 * len(trained), sorted(trained - changed)


# -- parameter groups and the optimizer ----------------------------------------


def _group(key: str) -> str:
  return 'sr' if _is_sr(key) else 'deblur'


def test_each_phase_trains_its_groups_and_freezes_the_rest():
  params = nnx.state(jdsr.build_model(jdsr.tiny_model_config()), nnx.Param)
  keys = list(_flat(params))
  assert "['act']['negative_slope'].value" in keys
  for phase, expected in [('deblur', lambda k: 'frozen' if _is_sr(k) else 'deblur'),
                          ('sr', lambda k: 'sr' if _is_sr(k) else 'frozen'),
                          ('joint', lambda k: 'sr' if _is_sr(k) else 'deblur')]:
    trained, frozen = phases_lib.split_params(params, phases_lib.get(phase))
    labels = {**{k: 'frozen' for k in _flat(frozen)}, **{k: _group(k) for k in _flat(trained)}}
    assert [labels[k] for k in keys] == [expected(k) for k in keys], phase
    assert len(labels) == len(keys)  # each parameter is either trained or frozen
  trained, frozen = phases_lib.split_params(params, phases_lib.get('sr'))
  assert all(_is_sr(k) for k in _flat(trained)) and not any(_is_sr(k) for k in _flat(frozen))
  with pytest.raises(ValueError, match='phase'):
    phases_lib.get('deblurr')


def test_frozen_parameters_have_no_optimizer_state(photos):
  params = nnx.state(jdsr.build_model(jdsr.tiny_model_config()), nnx.Param)
  sizes = {k: v.size for k, v in _flat(params).items()}
  for phase, trained in [('deblur', lambda k: not _is_sr(k)), ('sr', _is_sr),
                         ('joint', lambda k: True)]:
    opt_state = phases_lib.init_state(params, phases_lib.get(phase),
                                  phases_lib.make_optimizer(_config(photos, phase))).opt_state
    # Adam keeps two moments per trained parameter (and a few scalar step counts): nothing else.
    leaves = jax.tree.leaves(opt_state)
    moments = [leaf.size for leaf in leaves if leaf.dtype == np.float32]
    assert sum(moments) == 2 * sum(n for k, n in sizes.items() if trained(k)), phase
    assert all(leaf.dtype == np.int32 and leaf.ndim == 0 for leaf in leaves
               if leaf.dtype != np.float32)


def test_learning_rates_anneal_to_the_minimum(photos):
  config = _config(photos, 'joint', num_train_steps=10, learning_rate=1e-4, sr_learning_rate=3e-4)
  rates = phases_lib.learning_rates(config)
  assert float(rates['deblur'](0)) == pytest.approx(1e-4)
  assert float(rates['sr'](0)) == pytest.approx(3e-4)
  assert float(rates['deblur'](10)) == pytest.approx(1e-6)
  assert float(rates['sr'](10)) == pytest.approx(1e-6)


def _lowered_step(config, phase: str = 'joint') -> str:
  """The text of the training step ``config`` compiles (the tiny model, a batch of 2)."""
  model = loop.initial_model(config)
  graphdef, params = nnx.split(model, nnx.Param)
  tx = phases_lib.make_optimizer(config)
  state = phases_lib.init_state(params, phases_lib.get(phase), tx)
  step = jax.jit(phases_lib.make_train_step(graphdef, phases_lib.get(phase), tx))
  batch = {key: np.zeros((2, 16 * s, 16 * s, 3), np.float32)
           for key, s in (('blur_lr', 1), ('sharp_lr', 1), ('sharp_hr', 4))}
  batch['weight'] = np.ones(2, np.float32)
  rates = phases_lib.rates_at(phases_lib.learning_rates(config), 3)
  return step.lower(state, batch, rates).as_text()


def test_runs_that_differ_only_in_learning_rates_and_length_share_one_program(photos):
  one = _config(photos, 'joint', num_train_steps=4, learning_rate=1e-4, min_learning_rate=1e-6)
  other = _config(photos, 'joint', num_train_steps=40, learning_rate=3e-4, sr_learning_rate=5e-4,
                  min_learning_rate=1e-7)
  assert _lowered_step(one) == _lowered_step(other)
  # What is a constant of the program does make another one (so the comparison can fail).
  assert _lowered_step(_config(photos, 'joint', adam_b1=0.8)) != _lowered_step(one)
  # In one process, the loop builds a structure's programs once.
  mesh = loop._mesh()
  programs = [loop.programs(loop.initial_model(config), 'joint', (0.9, 0.999, 1e-8), True, 1, mesh)
              for config in (one, other)]
  assert programs[0] is programs[1]
  assert loop.programs(loop.initial_model(one), 'sr', (0.9, 0.999, 1e-8), True, 1,
                       mesh) is not programs[0]


def test_the_step_is_fed_the_logged_learning_rates(photos, tmp_path, monkeypatch):
  """The rates the compiled step receives at each step are the schedule's, as logged."""
  config = _config(photos, 'joint', num_train_steps=3, log_every=1, eval_every=100,
                   checkpoint_every=100, learning_rate=2e-4, sr_learning_rate=6e-4,
                   data={'val_count': 0})
  fed, programs = [], loop.programs

  def spying(*args):
    run = programs(*args)

    def step(state, batch, rates):
      fed.append({group: float(rate) for group, rate in rates.items()})
      return run.step(state, batch, rates)
    return loop.Programs(init=run.init, step=step, predict=run.predict)

  monkeypatch.setattr(loop, 'programs', spying)
  loop.train_and_evaluate(config, tmp_path)
  logged = {}
  for path in tmp_path.glob('events.out.tfevents.*'):
    for event in event_file_loader.EventFileLoader(str(path)).Load():
      for value in event.summary.value:
        if value.tag.startswith('train/lr_'):
          array = np.frombuffer(value.tensor.tensor_content, np.float32) if \
              value.tensor.tensor_content else [value.tensor.float_val[0]]
          logged.setdefault(event.step, {})[value.tag[len('train/lr_'):]] = float(array[0])
  schedules = phases_lib.learning_rates(config)
  expected = [{g: float(np.float32(schedules[g](step - 1))) for g in ('deblur', 'sr')}
              for step in (1, 2, 3)]
  assert fed == expected
  assert [logged[step] for step in (1, 2, 3)] == expected
  assert fed[0] == {'deblur': pytest.approx(2e-4), 'sr': pytest.approx(6e-4)}


# -- the three phases, chained ----------------------------------------------------


@pytest.fixture(scope='module')
def phases(photos, tmp_path_factory):
  """Phases 1 → 2 → 3 of the tiny model on the photo source: {phase: (initial params, result)}."""
  root = tmp_path_factory.mktemp('phases')
  out, init_from = {}, ''
  for phase in phases_lib.PHASES:
    config = _config(photos, phase, init_from=init_from)
    before = _params(loop.initial_model(config))
    out[phase] = before, loop.train_and_evaluate(config, root / phase)
    init_from = str(root / phase)
  return out


def test_phase1_trains_deblurring_only(phases):
  before, result = phases['deblur']
  after = _params(result.model)
  assert not _changed(before, _params(jdsr.build_model(tiny.get_config().model, 0)))  # from scratch
  _assert_trained(_changed(before, after), {k for k in before if not _is_sr(k)})


def test_phase2_freezes_deblurring_and_the_shared_prelu(phases):
  before, result = phases['sr']
  changed = _changed(before, _params(result.model))
  _assert_trained(changed, {k for k in before if _is_sr(k)})
  assert "['act']['negative_slope'].value" not in changed


def test_phase2_starts_from_phase1(phases):
  _, result1 = phases['deblur']
  before2, _ = phases['sr']
  best = ocp.utils.checkpoint_steps(result1.workdir / 'best')
  from_best = _params(jdsr.load(result1.workdir / 'best' / str(max(best))))
  assert not _changed(from_best, before2)


def test_phase3_trains_everything_but_the_unused_stage3_head(phases):
  before, result = phases['joint']
  changed = _changed(before, _params(result.model))
  # The joint loss leaves out the stage-3 image, so its conv ('tail') gets no gradient.
  _assert_trained(changed, set(before) - {"['tail']['kernel'].value"})
  assert "['act']['negative_slope'].value" in changed


def test_run_writes_checkpoints_metrics_and_images(phases):
  _, result = phases['joint']
  steps = ocp.utils.checkpoint_steps(result.workdir / 'checkpoints')
  assert sorted(steps) == [2, 4]
  model = jdsr.load(result.workdir / 'checkpoints' / '4')  # eval.py reads these
  assert not _changed(_params(model), _params(result.model))
  assert set(result.scalars) == {'val/psnr', 'val/ssim'}
  assert 0 < result.scalars['val/psnr'] < 60
  tags = set()
  for path in result.workdir.glob('events.out.tfevents.*'):
    for event in event_file_loader.EventFileLoader(str(path)).Load():
      tags.update(v.tag for v in event.summary.value)
  assert {'train/loss', 'train/lr_deblur', 'train/lr_sr', 'val/psnr', 'val/ssim',
          'steps_per_sec'} <= tags
  assert any(t.startswith('val/0_chelsea') for t in tags)  # input | output | target


# -- resume, crashes, NaN ---------------------------------------------------------


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


def test_interrupted_and_resumed_equals_straight(photos, tmp_path):
  config = _config(photos, 'joint', checkpoint_every=100, eval_every=100)
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
  assert not _changed(_flat(straight.state.params), _flat(resumed.state.params))
  assert not _changed(_flat(straight.state.opt_state), _flat(resumed.state.opt_state))
  saved = json.loads((ckpts / '4' / 'train' / 'metadata').read_text())
  assert saved['data_position'] == 4 * config.batch_size and saved['seed'] == config.seed


def test_resume_refuses_another_run(photos, tmp_path):
  config = _config(photos, 'deblur', data={'val_count': 0})
  loop.train_and_evaluate(config, tmp_path)
  other = _config(photos, 'deblur', seed=1)
  with pytest.raises(loop.TrainingError, match='seed=0'):
    loop.train_and_evaluate(other, tmp_path)


def test_nan_loss_stops_with_last_good_checkpoint(photos, tmp_path):
  config = _config(photos, 'deblur', data={'val_count': 0})

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
  assert all(np.isfinite(v).all() for v in _params(model).values())


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
  assert _changed(results[1, 1], _params(jdsr.build_model(tiny.get_config().model, 0)))  # it trained


# -- train.py on a REDS-layout tree, phases 1 → 2 → 3, then eval.py ---------------


def _train_py(*args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, 'train.py', *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=900)


def test_train_py_three_phases_on_reds_then_eval(tmp_path):
  manual = tmp_path / 'REDS'
  reds.write_fake_reds(manual, 'train', sequences=2, frames=(9, 19, 25), lr_size=(24, 32),
                       sharp_lr=True)
  reds.write_fake_reds(manual, 'val', sequences=2, frames=(9, 19, 25), lr_size=(24, 32), seed=1)
  data = [f'--config.data.reds_manual_dir={manual}', f'--config.data.reds_data_dir={tmp_path / "tfds"}']
  runs, init_from = tmp_path / 'runs', ''
  for n, phase in enumerate(phases_lib.PHASES, 1):
    result = _train_py('--config', 'configs/tiny.py', '--workdir', runs / f'phase{n}',
                       f'--config.phase={phase}', f'--config.init_from={init_from}', *data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'Done: {runs / f"phase{n}"} at step 4 (val/psnr' in result.stdout
    init_from = runs / f'phase{n}'
  # Running it again resumes, finds the run complete, and trains nothing more.
  again = _train_py('--config', 'configs/tiny.py', '--workdir', runs / 'phase3',
                    '--config.phase=joint', f'--config.init_from={runs / "phase2"}', *data)
  assert again.returncode == 0 and 'Resuming from step 4' in again.stderr
  assert ocp.utils.checkpoint_steps(runs / 'phase3' / 'checkpoints') == [2, 4]

  out = tmp_path / 'eval'
  result = subprocess.run(
      [sys.executable, 'eval.py', '--checkpoint', runs / 'phase3',  # a workdir: its best
       '--reds_root', manual, '--protocol', 'full', '--output_dir', out], cwd=ROOT,
      capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((out / 'summary.json').read_text())['restored'] == 4


def test_train_py_reports_bad_config(tmp_path):
  result = _train_py('--config', 'configs/tiny.py', '--workdir', tmp_path,
                     '--config.data.source=photos')
  assert result.returncode == 1
  assert 'train.py: error:' in result.stderr and 'photos_dir' in result.stderr


def test_a_failed_last_flush_of_the_event_files_is_a_warning_not_a_traceback_at_exit(tmp_path):
  """A full disk at the end of training: the event file's last flush fails; the process says so
  once and exits without tensorboardX's traceback from its exit handler."""
  script = textwrap.dedent(f'''
      from jdsr.train import writer
      w = writer.Writer({str(tmp_path / 'logs')!r})
      w.write_scalars(1, {{'loss': 1.0}})
      def full():
        raise OSError(28, 'No space left on device')
      w._tb.file_writer.event_writer._ev_writer.flush = full
      w.close()
      print('closed')
  ''')
  done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                        timeout=120, cwd=pathlib.Path(__file__).parent.parent)
  assert done.returncode == 0, done.stderr
  assert 'closed' in done.stdout
  assert 'Traceback' not in done.stderr, done.stderr
  assert 'No space left on device' in done.stderr
