"""Training without TensorFlow: train.py runs with TensorFlow made uninstalled (tests/without_tensorflow.py).

On photos it trains, checkpoints, resumes and writes TensorBoard events; on REDS it
reads the dataset that tensorflow-datasets prepared earlier (preparing needs TensorFlow:
the [reds] extra).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import orbax.checkpoint as ocp
import pytest
from tensorboard.backend.event_processing import event_file_loader

from jdsr.data import reds, reds_tfds
from tests import helpers


from tests.helpers import ROOT  # noqa: E402
PHOTOS = ROOT / 'samples' / 'sharp'


def _train_py(*args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'tests.without_tensorflow', 'train.py',
                         '--config', 'configs/tiny.py', *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=900)


def _tags(workdir: pathlib.Path) -> set[str]:
  tags = set()
  for path in workdir.glob('events.out.tfevents.*'):
    for event in event_file_loader.EventFileLoader(str(path)).Load():
      tags.update(v.tag for v in event.summary.value)
  return tags


@pytest.mark.slow
def test_the_blocker_really_hides_tensorflow():
  code = ('from tests import without_tensorflow as w; w.block()\n'
          'import importlib.util\nassert importlib.util.find_spec("tensorflow") is None\n'
          'try:\n  import tensorflow\nexcept ModuleNotFoundError:\n  print("absent")\n')
  assert helpers.python(code).strip() == 'absent'


@pytest.mark.slow
def test_photos_train_checkpoint_resume_and_log(tmp_path):
  data = ['--config.phase=deblur', '--config.data.source=photos',
          f'--config.data.photos_dir={PHOTOS}', f'--config.data.val_photos_dir={PHOTOS}']
  first = _train_py('--workdir', tmp_path, '--config.num_train_steps=2', *data)
  assert first.returncode == 0, first.stderr[-3000:]
  assert ocp.utils.checkpoint_steps(tmp_path / 'checkpoints') == [2]
  second = _train_py('--workdir', tmp_path, '--config.num_train_steps=4', *data)
  assert second.returncode == 0, second.stderr[-3000:]
  assert 'Resuming from step 2' in second.stderr
  assert ocp.utils.checkpoint_steps(tmp_path / 'checkpoints') == [2, 4]
  assert {'train/loss', 'train/lr_deblur', 'val/psnr', 'steps_per_sec'} <= _tags(tmp_path)
  assert any(tag.startswith('val/0_') for tag in _tags(tmp_path))


@pytest.mark.slow
def test_reds_prepared_earlier_is_read_without_tensorflow(tmp_path):
  manual, prepared = tmp_path / 'REDS', tmp_path / 'tfds'
  reds.write_fake_reds(manual, 'train', sequences=2, frames=(9, 19, 25), lr_size=(24, 32),
                       sharp_lr=True)
  reds.write_fake_reds(manual, 'val', sequences=2, frames=(9, 19, 25), lr_size=(24, 32), seed=1)
  assert len(reds_tfds.train_source(manual, prepared)) == 6  # prepared here, with TensorFlow
  result = _train_py('--workdir', tmp_path / 'run', '--config.phase=joint',
                     f'--config.data.reds_manual_dir={manual}',
                     f'--config.data.reds_data_dir={prepared}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Done:' in result.stdout and 'at step 4' in result.stdout


@pytest.mark.slow
def test_what_needs_tensorflow_says_which_extra_brings_it(tmp_path):
  manual = tmp_path / 'REDS'
  reds.write_fake_reds(manual, 'train', sequences=1, frames=(9,), lr_size=(24, 32), sharp_lr=True)
  reds.write_fake_reds(manual, 'val', sequences=1, frames=(9,), lr_size=(24, 32), seed=1)
  result = _train_py('--workdir', tmp_path / 'run', f'--config.data.reds_manual_dir={manual}',
                     f'--config.data.reds_data_dir={tmp_path / "tfds"}')
  assert result.returncode == 1
  assert "needs TensorFlow: pip install '.[reds]' in jdsr's folder" in result.stderr.strip().splitlines()[-1]
  export = subprocess.run([sys.executable, '-m', 'tests.without_tensorflow', 'jdsr/cli/export.py',
                           '--out', str(tmp_path / 'exported')], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
  assert export.returncode == 1 and not (tmp_path / 'exported').exists()
  assert export.stderr.strip().splitlines() == [
      "jdsr-export: error: the SavedModel needs TensorFlow: pip install '.[export]' in jdsr's "
      "folder (or pass --no_saved_model for the jax.export program alone)"]
