"""Bad checkpoints: damaged, for another model, empty, a folder, holding NaN, declaring huge
tensors; each is one clear line wherever it is read, and convert --overwrite replaces only
checkpoints.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

import jdsr
from tests.helpers import ROOT, SHARP, eval_py, files, images, one_error_line, run


# -- .pth files that declare huge tensors -----------------------------------------------------


@pytest.mark.slow
def test_a_small_pth_declaring_huge_tensors_is_refused_from_its_metadata(tmp_path):
  torch = pytest.importorskip('torch')
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), rngs=0), tmp_path / 'ok.pth')
  state = torch.load(tmp_path / 'ok.pth', weights_only=True)['state_dict']
  state['tail.weight'] = torch.zeros(1).expand(10**6, 10**6)  # a 931 GiB view of 4 bytes
  torch.save({'state_dict': state}, tmp_path / 'bomb.pth')
  assert (tmp_path / 'bomb.pth').stat().st_size < 2**20
  code = ('import resource, sys, time, jdsr\n'
          'start, rss = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
          'try:\n'
          f'  jdsr.load({str(tmp_path / "bomb.pth")!r}, jdsr.tiny_model_config())\n'
          'except jdsr.CheckpointError as e:\n'
          '  print(e)\n'
          'print(time.time() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024)\n')
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
  message, figures = out.stdout.strip().splitlines()
  assert 'wrong shape keys (1): tail.weight: (1000000, 1000000) (expected (3, 12, 3, 3))' in message
  seconds, megabytes = map(float, figures.split())
  assert seconds < 20 and megabytes < 200


# -- convert --overwrite deletes nothing but checkpoints --------------------------------------


@pytest.mark.slow
def test_convert_overwrite_refuses_other_folders_and_its_input(tiny_checkpoint, tmp_path):
  victim = tmp_path / 'd'
  (victim / '.git').mkdir(parents=True)
  (victim / 'notes.md').write_text('x')
  before = files(victim)
  result = run('-m', 'jdsr.cli.convert', '--checkpoint', tiny_checkpoint, '--out', victim,
               '--overwrite')
  one_error_line(result, str(victim), 'refusing to replace it')
  result = run('-m', 'jdsr.cli.convert', '--checkpoint', tiny_checkpoint, '--out', '.',
               '--overwrite', cwd=victim)
  one_error_line(result, 'refusing to replace it')
  assert files(victim) == before and (victim / '.git').is_dir()
  pth = tmp_path / 'tiny.pth'
  jdsr.save(jdsr.load(tiny_checkpoint), pth)
  source = pth.read_bytes()
  one_error_line(run('-m', 'jdsr.cli.convert', '--checkpoint', pth, '--out', pth, '--overwrite'),
                 'that is the input checkpoint')
  assert pth.read_bytes() == source


# -- bad checkpoints: one line everywhere ---------------------------------------------------


def _damage(checkpoint: pathlib.Path) -> None:
  for f in (checkpoint / 'params').rglob('*'):
    if f.is_file() and f.stat().st_size > 100:
      f.write_bytes(f.read_bytes()[:50])  # truncated


@pytest.mark.slow
def test_a_damaged_checkpoint_is_one_line_in_eval_convert_and_training(tiny_checkpoint, tmp_path):
  bad = tmp_path / 'bad'
  shutil.copytree(tiny_checkpoint, bad)
  _damage(bad)
  inputs = images(tmp_path / 'in', ['a.png'])
  one_error_line(eval_py(bad, inputs, tmp_path / 'out'), str(bad), 'cannot read the checkpoint')
  one_error_line(run('-m', 'jdsr.cli.convert', '--checkpoint', bad, '--out', tmp_path / 'x.pth'),
                 str(bad), 'cannot read the checkpoint')
  train = ('train.py', '--config', 'configs/tiny.py', '--config.data.source=photos',
           f'--config.data.photos_dir={SHARP}', f'--config.data.val_photos_dir={SHARP}')
  one_error_line(run(*train, '--workdir', tmp_path / 'w', f'--config.init_from={bad}'),
                 str(bad), 'cannot read the checkpoint')


@pytest.mark.slow
def test_a_pth_for_another_model_is_one_line(tiny_checkpoint, tmp_path):
  pth = tmp_path / 'tiny.pth'
  jdsr.save(jdsr.load(tiny_checkpoint), pth)
  result = run('-m', 'jdsr.cli.convert', '--checkpoint', pth, '--out', tmp_path / 'ckpt')
  one_error_line(result, 'tiny.pth does not fit the model config', 'missing keys')


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
