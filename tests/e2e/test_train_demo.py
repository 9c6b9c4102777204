"""scripts/train_demo.sh: the three demo phases and the conversion, with the user's flags on each.

The script runs with a stand-in ``PYTHON`` that records its arguments (training the demo model
takes hours); its first command then runs for real on samples/sharp, two steps long.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT


def _run(tmp_path, *args):
  recorder = tmp_path / 'python'
  recorder.write_text('#!/bin/sh\nprintf "%s\\n" "$*" >> "$CALLS"\n')
  recorder.chmod(0o755)
  calls = tmp_path / 'calls'
  result = subprocess.run(['bash', 'scripts/train_demo.sh', *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60,
                          env={'PATH': '/usr/bin:/bin', 'PYTHON': str(recorder), 'CALLS': str(calls)})
  return result, calls.read_text().splitlines() if calls.exists() else []


def test_the_three_phases_then_the_conversion_on_samples_sharp(tmp_path):
  result, calls = _run(tmp_path, 'samples/sharp', '--config.num_train_steps=10',
                       '--config.batch_size=2')
  assert result.returncode == 0, result.stderr
  data = ('--config.data.photos_dir=samples/sharp --config.data.val_photos_dir=samples/sharp '
          '--config.num_train_steps=10 --config.batch_size=2')
  assert calls == [
      f'train.py --config configs/demo.py:deblur --workdir runs/demo/phase1 {data}',
      f'train.py --config configs/demo.py:sr --workdir runs/demo/phase2 '
      f'--config.init_from=runs/demo/phase1 {data}',
      f'train.py --config configs/demo.py:joint --workdir runs/demo/phase3 '
      f'--config.init_from=runs/demo/phase2 {data}',
      '-m jdsr.cli.convert --checkpoint runs/demo/phase3 --out jdsr/models/demo --overwrite']


def test_validation_photos_and_workdirs_can_be_named(tmp_path):
  result, calls = _run(tmp_path, 'a,b', 'c', str(tmp_path / 'runs'))
  assert result.returncode == 0, result.stderr
  assert calls[0] == (f'train.py --config configs/demo.py:deblur --workdir {tmp_path}/runs/phase1 '
                      '--config.data.photos_dir=a,b --config.data.val_photos_dir=c')
  (tmp_path / 'calls').unlink()
  result, calls = _run(tmp_path, 'a,b')
  assert calls[0].endswith('--config.data.photos_dir=a,b --config.data.val_photos_dir=b')


def test_no_photos_is_a_usage_error(tmp_path):
  result, calls = _run(tmp_path)
  assert result.returncode == 2 and result.stderr.startswith('usage: bash scripts/train_demo.sh')
  assert calls == []


@pytest.mark.slow
def test_train_demo_sh_first_command_trains_on_samples_sharp(tmp_path):
  """Phase 1 of train_demo.sh as it calls it on samples/sharp (chelsea.png is smaller than
  configs/demo.py's validation crop), shortened: it trains, validates and checkpoints."""
  workdir = tmp_path / 'phase1'
  result = subprocess.run(
      [sys.executable, 'train.py', '--config', 'configs/demo.py:deblur', '--workdir', str(workdir),
       '--config.data.photos_dir=samples/sharp', '--config.data.val_photos_dir=samples/sharp',
       '--config.num_train_steps=2', '--config.batch_size=2', '--config.eval_every=2',
       '--config.checkpoint_every=2'], cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'every validation crop is 96x72' in result.stderr
  assert 'compiling the training step first' in result.stderr
  assert (workdir / 'best' / '2' / 'params').is_dir()  # validated: the best step is kept
  assert (workdir / 'checkpoints').is_dir()
