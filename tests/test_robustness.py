"""Nothing lost, nothing hangs: each failure found by trying to break jdsr, reproduced.

The numbers are the items of the issue that found them: (1) convert --overwrite, (2) output
names, (3) links, (4) data errors in training, (5) diverged weights, (6) huge images,
(7) empty folders, (8) bad checkpoints, (9) two runs in one workdir, (10) one-line errors.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest

import jdsr
from jdsr.io import imagefile
from jdsr.inference import restore as restore_lib
from jdsr.train import loop
from tests import training

pytestmark = pytest.mark.slow  # end-to-end: see pyproject.toml

ROOT = pathlib.Path(__file__).parents[1]
SHARP = ROOT / 'samples' / 'sharp'


def _run(*args, cwd=ROOT, timeout=600) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=str(ROOT))  # the checkout's jdsr, from any folder
  return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                        timeout=timeout, env=env)


def _one_error_line(result: subprocess.CompletedProcess, *expected: str) -> str:
  """The process failed with one error line containing `expected`, and no traceback."""
  assert result.returncode != 0, result.stdout[-2000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if 'error:' in line]
  assert len(errors) == 1, result.stderr[-3000:]
  for text in expected:
    assert text in errors[0], errors[0]
  return errors[0]


def _tree(path: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory) -> pathlib.Path:
  path = tmp_path_factory.mktemp('ckpt') / 'tiny'
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), rngs=0), path)
  return path


def _images(folder: pathlib.Path, names: list[str], size=(12, 20)) -> pathlib.Path:
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for name in names:
    imagefile.write_image(folder / name, rng.random((*size, 3)).astype(np.float32))
  return folder


def _eval(tiny_ckpt, inputs, out, *flags) -> subprocess.CompletedProcess:
  return _run('eval.py', '--config', 'configs/eval_default.py', '--checkpoint', tiny_ckpt,
              '--input_dir', inputs, '--output_dir', out, '--save_figures=false', *flags)


# -- (1) convert --overwrite deletes nothing but checkpoints -----------------------------


def test_convert_overwrite_refuses_other_folders_and_its_input(tiny_ckpt, tmp_path):
  victim = tmp_path / 'd'
  (victim / '.git').mkdir(parents=True)
  (victim / 'notes.md').write_text('x')
  before = _tree(victim)
  result = _run('-m', 'jdsr.cli.convert', '--checkpoint', tiny_ckpt, '--out', victim, '--overwrite')
  _one_error_line(result, str(victim), 'refusing to replace it')
  result = _run('-m', 'jdsr.cli.convert', '--checkpoint', tiny_ckpt, '--out', '.', '--overwrite',
                cwd=victim)
  _one_error_line(result, 'refusing to replace it')
  assert _tree(victim) == before and (victim / '.git').is_dir()
  pth = tmp_path / 'tiny.pth'
  jdsr.save(jdsr.load(tiny_ckpt), pth)
  source = pth.read_bytes()
  _one_error_line(_run('-m', 'jdsr.cli.convert', '--checkpoint', pth, '--out', pth, '--overwrite'),
                  'that is the input checkpoint')
  assert pth.read_bytes() == source


# -- (2) same stems, (3) links, (6) huge images, (7) empty folders and other files --------


def test_one_folder_of_troubles_loses_nothing(tiny_ckpt, tmp_path):
  """(2) names that share a stem, (3) links in the output folder, (6) an image over the size
  limit, (7) a file of another type: one run, every result kept, every problem one line."""
  inputs = _images(tmp_path / 'in', ['a.png', 'a.jpg', 'a.TIF', 'b.png'])
  _images(inputs, ['huge.png'], size=(300, 280))  # x4: 1.34 megapixels, over a limit of 1
  (inputs / 'anim.gif').write_bytes(b'GIF89a')
  victims = _tree(inputs)
  out = tmp_path / 'out'
  (out / 'images').mkdir(parents=True)
  for name, target in (('results.csv', 'a.png'), ('summary.json', 'b.png'),
                       ('summary.json.tmp', 'a.jpg')):
    (out / name).symlink_to(inputs / target)
  (out / 'images' / 'b.png').symlink_to(inputs / 'b.png')
  result = _eval(tiny_ckpt, inputs, out, '--config.max_output_megapixels=1')
  _one_error_line(result, 'huge.png', '1120x1200', 'max_output_megapixels')
  assert 'skipped: ' in result.stderr and 'anim.gif' in result.stderr  # reported, not silent
  assert '4 of 5 images restored' in result.stdout and '1 other files skipped' in result.stdout
  assert _tree(inputs) == victims  # no input was written over, through a link or otherwise
  written = sorted(p.name for p in (out / 'images').iterdir())
  assert written == ['a.TIF.png', 'a.jpg.png', 'a.png.png', 'b.png']  # distinct names
  for path in (out / 'results.csv', out / 'summary.json', out / 'images' / 'b.png'):
    assert path.is_file() and not path.is_symlink(), path
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['restored'] == 4 and summary['failed'][0]['name'] == 'huge'
  assert summary['skipped'][0]['name'] == 'anim.gif'


def test_empty_and_unsupported_folders_are_one_line(tiny_ckpt, tmp_path):
  (tmp_path / 'empty').mkdir()
  _one_error_line(_eval(tiny_ckpt, tmp_path / 'empty', tmp_path / 'o1'), 'no images')
  gifs = tmp_path / 'gifs'
  gifs.mkdir()
  (gifs / 'anim.gif').write_bytes(b'GIF89a')
  _one_error_line(_eval(tiny_ckpt, gifs, tmp_path / 'o2'), 'no images', 'anim.gif')


# -- (5) diverged weights are never saved, never scored -----------------------------------


def _photos_config(**overrides):
  return training.photos_config(SHARP, SHARP, **overrides)


def test_diverged_weights_are_never_saved(tmp_path):
  config = _photos_config(learning_rate=1e30, checkpoint_every=1, eval_every=1)
  with pytest.raises(loop.TrainingError, match='NaN or inf.*not saved.*checkpoint is none'):
    loop.train_and_evaluate(config, tmp_path)
  from jdsr import checkpoints
  assert checkpoints.steps(tmp_path / 'checkpoints') == []
  assert checkpoints.steps(tmp_path / 'best') == []
  # Without validation at that step, the check before saving catches it.
  config = _photos_config(learning_rate=1e30, checkpoint_every=1, eval_every=100)
  with pytest.raises(loop.TrainingError, match='model outputs NaN or inf.*not saved'):
    loop.train_and_evaluate(config, tmp_path / 'b')
  assert checkpoints.steps(tmp_path / 'b' / 'checkpoints') == []


def test_eval_reports_non_finite_outputs_per_image(tmp_path):
  from flax import nnx
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=0)
  params = nnx.state(model, nnx.Param)
  nnx.update(model, jax_tree_scale(params, 1e30))  # finite, but the outputs overflow
  jdsr.save(model, tmp_path / 'huge')
  inputs = _images(tmp_path / 'in', ['a.png'])
  result = _eval(tmp_path / 'huge', inputs, tmp_path / 'out')
  _one_error_line(result, 'a.png', 'NaN or inf')
  assert not (tmp_path / 'out' / 'images' / 'a.png').exists()
  assert 'inf' not in (tmp_path / 'out' / 'results.csv').read_text()


def jax_tree_scale(tree, factor):
  import jax
  return jax.tree.map(lambda x: x * factor, tree)


# -- (4) a data error ends the run, never hangs -----------------------------------------


def test_a_data_error_ends_training_with_one_line_and_no_hang(tmp_path):
  photos = tmp_path / 'photos'
  shutil.copytree(SHARP, photos)
  (photos / 'zz_truncated.png').write_bytes((SHARP / 'astronaut.png').read_bytes()[:3000])
  result = _run('train.py', '--config', 'configs/tiny.py', '--workdir', tmp_path / 'w',
                '--config.phase=deblur', '--config.data.source=photos',
                f'--config.data.photos_dir={photos}', f'--config.data.val_photos_dir={SHARP}',
                timeout=300)  # it used to wait forever on a lock after the traceback
  _one_error_line(result, 'data error', 'zz_truncated.png', 'truncated')


def test_an_image_smaller_than_the_crop_names_the_file(tmp_path):
  config = _photos_config(data={'lr_size': 1024})
  config.data.val_count = 0
  with pytest.raises(loop.TrainingError, match=r'data error: [a-z]+\.png: .*smaller than the '
                     r'1024x1024 crop'):
    loop.train_and_evaluate(config, tmp_path)


# -- (8) bad checkpoints: one line everywhere -------------------------------------------


def _damage(checkpoint: pathlib.Path) -> None:
  for f in (checkpoint / 'params').rglob('*'):
    if f.is_file() and f.stat().st_size > 100:
      f.write_bytes(f.read_bytes()[:50])  # truncated


def test_a_damaged_checkpoint_is_one_line_in_eval_convert_and_training(tiny_ckpt, tmp_path):
  bad = tmp_path / 'bad'
  shutil.copytree(tiny_ckpt, bad)
  _damage(bad)
  inputs = _images(tmp_path / 'in', ['a.png'])
  _one_error_line(_eval(bad, inputs, tmp_path / 'out'), str(bad), 'cannot read the checkpoint')
  _one_error_line(_run('-m', 'jdsr.cli.convert', '--checkpoint', bad, '--out', tmp_path / 'x.pth'),
                  str(bad), 'cannot read the checkpoint')
  train = ('train.py', '--config', 'configs/tiny.py', '--config.data.source=photos',
           f'--config.data.photos_dir={SHARP}', f'--config.data.val_photos_dir={SHARP}')
  _one_error_line(_run(*train, '--workdir', tmp_path / 'w', f'--config.init_from={bad}'),
                  str(bad), 'cannot read the checkpoint')


def test_a_pth_for_another_model_is_one_line(tiny_ckpt, tmp_path):
  pth = tmp_path / 'tiny.pth'
  jdsr.save(jdsr.load(tiny_ckpt), pth)
  result = _run('-m', 'jdsr.cli.convert', '--checkpoint', pth, '--out', tmp_path / 'ckpt')
  _one_error_line(result, 'tiny.pth does not fit the model config', 'missing keys')


def test_resuming_with_another_model_size_is_one_line(tmp_path):
  loop.train_and_evaluate(_photos_config(num_train_steps=2), tmp_path)
  bigger = _photos_config(num_train_steps=4)
  bigger.model.n_feat = 16
  with pytest.raises(jdsr.CheckpointError, match=r'checkpoints/2: saved for a model with n_feat=8'):
    loop.train_and_evaluate(bigger, tmp_path)


# -- (9) two runs in one workdir ----------------------------------------------------------


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


# -- (10) one line instead of a traceback -------------------------------------------------


def test_bad_configs_are_one_line(tmp_path):
  (tmp_path / 'notes.md').write_text('# not python ×\n')
  for config in ('nope.py', tmp_path / 'notes.md'):
    _one_error_line(_run('train.py', '--config', config, '--workdir', tmp_path / 'w'),
                    'cannot load the config file')
  _one_error_line(_run('eval.py', '--config', 'nope.py'), 'cannot load the config file')
  for field, value in (('learning_rate', 0.0), ('batch_size', 0), ('num_train_steps', -1)):
    config = _photos_config(**{field: value})
    with pytest.raises(ValueError, match=f'config.{field}=.* must be positive'):
      loop.train_and_evaluate(config, tmp_path / field)
  _one_error_line(_run('train.py', '--config', 'configs/tiny.py', '--workdir', tmp_path / 'w',
                       '--config.learning_rate=0'), 'learning_rate=0.0 must be positive')


def test_output_folder_that_is_a_file_is_one_line(tiny_ckpt, tmp_path):
  inputs = _images(tmp_path / 'in', ['a.png'])
  (tmp_path / 'out').write_text('x')
  _one_error_line(_eval(tiny_ckpt, inputs, tmp_path / 'out'), 'out', 'is a file')
  assert (tmp_path / 'out').read_text() == 'x'


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_read_only_output_folder_is_one_line(tiny_ckpt, tmp_path):
  inputs = _images(tmp_path / 'in', ['a.png'])
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out').chmod(0o555)
  _one_error_line(_eval(tiny_ckpt, inputs, tmp_path / 'out'), 'out')


def test_bad_pth_files_are_one_clear_line(tmp_path):
  empty = tmp_path / 'empty.pth'
  empty.write_bytes(b'')
  with pytest.raises(jdsr.CheckpointError) as e:
    jdsr.load(empty)
  assert not str(e.value).rstrip().endswith(':') and 'empty.pth' in str(e.value)
  (tmp_path / 'dir.pth').mkdir()
  with pytest.raises(jdsr.CheckpointError, match='dir.pth: not a checkpoint'):
    jdsr.load(tmp_path / 'dir.pth')
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=0)
  jdsr.save(model, tmp_path / 'ok.pth')
  import torch
  state = torch.load(tmp_path / 'ok.pth', weights_only=True)
  state['state_dict']['tail.weight'][0, 0, 0, 0] = float('nan')
  torch.save(state, tmp_path / 'nan.pth')
  with pytest.raises(jdsr.CheckpointError, match='nan.pth: tail.weight holds NaN or inf'):
    jdsr.load(tmp_path / 'nan.pth', jdsr.tiny_model_config())


def test_restore_warns_about_values_outside_0_1_and_takes_overlap_0():
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=0)
  image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
  with pytest.warns(UserWarning, match=r'values in \[.*\], expected \[0, 1\]'):
    restore_lib.restore(model, image * 255)
  bad = image.copy()
  bad[0, 0, 0] = np.nan
  with pytest.warns(UserWarning, match='1 NaN or inf values'):
    restore_lib.restore(model, bad)
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    out = restore_lib.restore(model, np.tile(image, (4, 4, 1)),
                              restore_lib.Options(tile=24, overlap=0))
  assert out.shape == (256, 256, 3) and np.isfinite(out).all()
  with pytest.raises(ValueError, match='overlap must be 0 or more'):
    restore_lib.restore(model, image, restore_lib.Options(tile=24, overlap=-1))


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
  from jdsr import checkpoints
  assert checkpoints.steps(tmp_path / 'checkpoints') == [2]
