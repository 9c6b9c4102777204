"""train.py and eval.py on a REDS-layout tree, in subprocesses, as a user runs them.

The three phases chained are docs/training.md's (tests/train/test_three_phases.py); here one
run reads REDS through TFDS, resumes, and eval.py scores it on the full validation set.
"""

from __future__ import annotations

import json
import subprocess
import sys

import orbax.checkpoint as ocp
import pytest

from jdsr.data import reds
from tests.helpers import ROOT


def _train_py(*args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, 'train.py', *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_train_py_on_reds_resumes_then_eval_scores_it(tmp_path):
  manual = tmp_path / 'REDS'
  reds.write_fake_reds(manual, 'train', sequences=2, frames=(9, 19, 25), lr_size=(24, 32),
                       sharp_lr=True)
  reds.write_fake_reds(manual, 'val', sequences=2, frames=(9, 19, 25), lr_size=(24, 32), seed=1)
  data = [f'--config.data.reds_manual_dir={manual}', f'--config.data.reds_data_dir={tmp_path / "tfds"}']
  run = tmp_path / 'runs' / 'joint'
  result = _train_py('--config', 'configs/tiny.py', '--workdir', run, '--config.phase=joint',
                     *data)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Done: {run} at step 4 (val/psnr' in result.stdout
  # Running it again resumes, finds the run complete, and trains nothing more.
  again = _train_py('--config', 'configs/tiny.py', '--workdir', run, '--config.phase=joint',
                    *data)
  assert again.returncode == 0 and 'Resuming from step 4' in again.stderr
  assert ocp.utils.checkpoint_steps(run / 'checkpoints') == [2, 4]

  out = tmp_path / 'eval'
  result = subprocess.run(
      [sys.executable, 'eval.py', '--checkpoint', run,  # a workdir: its best
       '--reds_root', manual, '--protocol', 'full', '--output_dir', out], cwd=ROOT,
      capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((out / 'summary.json').read_text())['restored'] == 4


@pytest.mark.slow
def test_train_py_reports_bad_config(tmp_path):
  result = _train_py('--config', 'configs/tiny.py', '--workdir', tmp_path,
                     '--config.data.source=photos')
  assert result.returncode == 1
  assert 'train.py: error:' in result.stderr and 'photos_dir' in result.stderr
