"""eval.py end to end on a tiny REDS-layout tree with a tiny random model."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import jdsr
from jdsr.io import imagefile
from jdsr.evaluation import metrics
from jdsr.data import reds

from tests.helpers import ROOT  # noqa: E402


def _run(*args):
  return subprocess.run([sys.executable, 'eval.py', *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=900)


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
  path = tmp_path_factory.mktemp('ckpt') / 'tiny'
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), rngs=0), path)
  return path


def test_help_documents_every_option():
  result = _run('--help')  # absl exits with 1 after printing the help
  assert 'Evaluate the network on REDS' in result.stdout
  for flag in ('checkpoint', 'reds_root', 'subset', 'protocol', 'input_dir', 'target_dir',
               'tlsc', 'ensemble', 'tile', 'output_dir', 'save_images', 'save_figures',
               'reference_outputs', 'limit', 'config'):
    assert f'--{flag}' in result.stdout or f'--[no]{flag}' in result.stdout, flag


@pytest.mark.slow
def test_reds_end_to_end(tiny_checkpoint, tmp_path):
  root = reds.write_fake_reds(tmp_path / 'REDS', split='val', sequences=2, frames=(9, 19, 25))
  out = tmp_path / 'out'
  result = _run('--checkpoint', tiny_checkpoint, '--reds_root', root, '--protocol', 'full',
                '--output_dir', out)
  assert result.returncode == 0, result.stderr
  assert 'bicubic' in result.stdout and 'ours' in result.stdout

  with open(out / 'results.csv') as f:
    rows = list(csv.DictReader(f))
  assert [r['name'] for r in rows] == ['000_00000009', '000_00000019', '001_00000009',
                                       '001_00000019']  # Val300 frames only
  for row in rows:
    restored = imagefile.read_image(out / 'images' / f"{row['name']}.png").rgb
    frame = next(f for f in reds.list_frames(root, 'val') if f.id == row['name'])
    target = imagefile.read_image(frame.sharp_hr).rgb
    assert restored.shape == target.shape
    assert float(row['psnr']) == pytest.approx(metrics.psnr(restored, target), abs=1e-3)
    assert float(row['ssim']) == pytest.approx(metrics.ssim(restored, target), abs=1e-3)
    assert (out / 'figures' / f"{row['name']}.png").stat().st_size > 0
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['restored'] == 4 and not summary['failed']
  assert summary['mean']['psnr'] == pytest.approx(np.mean([float(r['psnr']) for r in rows]),
                                                  abs=1e-3)

  # --reference_outputs: our first run's images stand in for the official outputs.
  again = _run('--checkpoint', tiny_checkpoint, '--reds_root', root, '--protocol', 'full',
               '--output_dir', tmp_path / 'again', '--reference_outputs', out / 'images',
               '--save_figures=false', '--limit', '2')
  assert again.returncode == 0, again.stderr
  assert 'ours vs the official outputs: inf dB' in again.stdout
  with open(tmp_path / 'again' / 'results.csv') as f:
    assert [r['reference_psnr'] for r in csv.DictReader(f)] == ['inf', 'inf']


@pytest.mark.slow
def test_folder_with_a_bad_file(tiny_checkpoint, tmp_path):
  inputs = tmp_path / 'in'
  inputs.mkdir()
  rng = np.random.default_rng(0)
  imagefile.write_image(inputs / 'a.png', rng.random((12, 20, 3)))
  imagefile.write_image(inputs / 'c.png', rng.random((9, 9, 3)), rng.random((9, 9)), gray=True)
  (inputs / 'b.png').write_text('not an image')
  out = tmp_path / 'out'
  result = _run('--config', ROOT / 'configs' / 'eval_default.py', '--checkpoint',
                tiny_checkpoint, '--input_dir', inputs, '--output_dir', out)
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and 'b.png' in errors[0]
  assert imagefile.read_image(out / 'images' / 'a.png').rgb.shape == (48, 80, 3)
  restored = imagefile.read_image(out / 'images' / 'c.png')  # grayscale and alpha kept
  assert restored.gray and restored.alpha.shape == (36, 36)
  assert not (out / 'images' / 'b.png').exists()


@pytest.mark.slow
def test_refuses_to_write_over_inputs(tiny_checkpoint, tmp_path):
  images = tmp_path / 'images'
  images.mkdir()
  imagefile.write_image(images / 'x.png', np.zeros((8, 8, 3)))
  before = (images / 'x.png').read_bytes()
  result = _run('--config', ROOT / 'configs' / 'eval_default.py', '--checkpoint',
                tiny_checkpoint, '--input_dir', images, '--output_dir', tmp_path,
                '--save_figures=false')
  assert result.returncode == 1 and 'over an input' in result.stderr
  assert (images / 'x.png').read_bytes() == before


@pytest.mark.slow
def test_compiled_programs_are_cached_across_runs_unless_turned_off(tiny_checkpoint, tmp_path):
  inputs = tmp_path / 'in'
  imagefile.write_image(inputs / 'a.png', np.random.default_rng(0).random((16, 16, 3)))
  env = {k: v for k, v in __import__('os').environ.items() if not k.startswith('JAX_')}
  env.update(XDG_CACHE_HOME=str(tmp_path / 'cache'), JAX_PLATFORMS='cpu')
  args = [sys.executable, 'eval.py', '--config', 'configs/eval_default.py', '--checkpoint',
          tiny_checkpoint, '--input_dir', inputs, '--save_figures=false']
  for flag in ('--nocompilation_cache', '--compilation_cache'):
    result = subprocess.run([*map(str, args), '--output_dir', str(tmp_path / flag), flag],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    cached = list((tmp_path / 'cache' / 'jdsr' / 'jax').glob('*'))
    assert bool(cached) == (flag == '--compilation_cache'), (flag, cached)
