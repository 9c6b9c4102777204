"""eval.py when things go wrong: a busy output folder, missing references and ground truths,
troubled input folders, non-finite outputs, output folders it cannot use, usage errors.

Every problem is one line; no result is lost and no input is written over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import jdsr
from jdsr.io import locks
from tests.helpers import ROOT, eval_py, files, images, one_error_line, one_line


def _eval_py(*args) -> list[str]:
  return [sys.executable, 'eval.py', *map(str, args)]


def _last(stderr: str) -> str:
  return [line for line in stderr.strip().splitlines() if line.strip()][-1]


# -- a busy output folder, missing references and ground truths ---------------------------


@pytest.mark.slow
def test_a_second_eval_into_the_same_folder_is_refused(tmp_path):
  log, out = tmp_path / 'log', tmp_path / 'out'
  first = subprocess.Popen(_eval_py('--input_dir', ROOT / 'samples' / 'blurry', '--output_dir',
                                    out, '--ensemble'), cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=log.open('w'), text=True)
  try:
    end = time.monotonic() + 120
    while not (out / locks.NAME).exists():
      assert first.poll() is None and time.monotonic() < end, log.read_text()[-3000:]
      time.sleep(0.2)
    second = subprocess.run(_eval_py('--input_dir', ROOT / 'samples' / 'blurry', '--output_dir',
                                     out), cwd=ROOT, capture_output=True, text=True, timeout=300)
  finally:
    first.kill()
  assert second.returncode == 1
  assert 'is in use by another evaluation' in one_line(second.stderr)


@pytest.mark.slow
def test_missing_reference_outputs_lose_no_work(tmp_path):
  inputs, refs, out = tmp_path / 'in', tmp_path / 'refs', tmp_path / 'out'
  inputs.mkdir()
  refs.mkdir()
  for name in ('a', 'b'):
    Image.open(ROOT / 'samples' / 'blurry' / 'chelsea.png').crop((0, 0, 32, 32)).save(
        inputs / f'{name}.png')
  Image.new('RGB', (128, 128)).save(refs / 'a.png')
  result = subprocess.run(_eval_py('--input_dir', inputs, '--output_dir', out,
                                   '--reference_outputs', refs), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(p.name for p in (out / 'images').iterdir()) == ['a.png', 'b.png']
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['no_reference'] == ['b'] and not summary['failed']
  assert 'no reference: ' in result.stderr


@pytest.mark.slow
def test_ground_truths_that_do_not_match_are_reported(tmp_path):
  inputs, truths, out = tmp_path / 'in', tmp_path / 'truths', tmp_path / 'out'
  inputs.mkdir()
  truths.mkdir()
  for name in ('gray', 'twice', 'none', 'ok'):
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(inputs / f'{name}.png')
  Image.new('L', (32, 32)).save(truths / 'gray.png')
  Image.new('RGB', (32, 32)).save(truths / 'twice.png')
  Image.new('RGB', (32, 32)).save(truths / 'twice.jpg')
  Image.new('RGB', (32, 32)).save(truths / 'ok.png')
  result = subprocess.run(_eval_py('--input_dir', inputs, '--target_dir', truths, '--output_dir',
                                   out), cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1  # the grayscale ground truth is refused
  assert 'gray.png: the ground truth is grayscale and the input' in result.stderr
  assert 'skipped: ' in result.stderr and 'twice.jpg, twice.png' in result.stderr
  assert 'no ground truth: ' in result.stderr and 'none.png' in result.stderr
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['scored'] == 1 and summary['no_ground_truth'] == ['none']


# -- troubled input folders ----------------------------------------------------------------


@pytest.mark.slow
def test_one_folder_of_troubles_loses_nothing(tiny_checkpoint, tmp_path):
  """Names that share a stem, links in the output folder, an image over the size limit, a file
  of another type: one run, every result kept, every problem one line."""
  inputs = images(tmp_path / 'in', ['a.png', 'a.jpg', 'a.TIF', 'b.png'])
  images(inputs, ['huge.png'], size=(300, 280))  # x4: 1.34 megapixels, over a limit of 1
  (inputs / 'anim.gif').write_bytes(b'GIF89a')
  victims = files(inputs)
  out = tmp_path / 'out'
  (out / 'images').mkdir(parents=True)
  for name, target in (('results.csv', 'a.png'), ('summary.json', 'b.png'),
                       ('summary.json.tmp', 'a.jpg')):
    (out / name).symlink_to(inputs / target)
  (out / 'images' / 'b.png').symlink_to(inputs / 'b.png')
  result = eval_py(tiny_checkpoint, inputs, out, '--config.max_output_megapixels=1')
  one_error_line(result, 'huge.png', '1120x1200', 'max_output_megapixels')
  assert 'skipped: ' in result.stderr and 'anim.gif' in result.stderr  # reported, not silent
  assert '4 of 5 images restored' in result.stdout and '1 other files skipped' in result.stdout
  assert files(inputs) == victims  # no input was written over, through a link or otherwise
  written = sorted(p.name for p in (out / 'images').iterdir())
  assert written == ['a.TIF.png', 'a.jpg.png', 'a.png.png', 'b.png']  # distinct names
  for path in (out / 'results.csv', out / 'summary.json', out / 'images' / 'b.png'):
    assert path.is_file() and not path.is_symlink(), path
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['restored'] == 4 and summary['failed'][0]['name'] == 'huge'
  assert summary['skipped'][0]['name'] == 'anim.gif'


@pytest.mark.slow
def test_empty_and_unsupported_folders_are_one_line(tiny_checkpoint, tmp_path):
  (tmp_path / 'empty').mkdir()
  one_error_line(eval_py(tiny_checkpoint, tmp_path / 'empty', tmp_path / 'o1'), 'no images')
  gifs = tmp_path / 'gifs'
  gifs.mkdir()
  (gifs / 'anim.gif').write_bytes(b'GIF89a')
  one_error_line(eval_py(tiny_checkpoint, gifs, tmp_path / 'o2'), 'no images', 'anim.gif')


# -- non-finite outputs ------------------------------------------------------------------


def _scaled(tree, factor):
  import jax
  return jax.tree.map(lambda x: x * factor, tree)


@pytest.mark.slow
def test_eval_reports_non_finite_outputs_per_image(tmp_path):
  from flax import nnx
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=0)
  params = nnx.state(model, nnx.Param)
  nnx.update(model, _scaled(params, 1e30))  # finite, but the outputs overflow
  jdsr.save(model, tmp_path / 'huge')
  inputs = images(tmp_path / 'in', ['a.png'])
  result = eval_py(tmp_path / 'huge', inputs, tmp_path / 'out')
  one_error_line(result, 'a.png', 'NaN or inf')
  assert not (tmp_path / 'out' / 'images' / 'a.png').exists()
  assert 'inf' not in (tmp_path / 'out' / 'results.csv').read_text()


# -- output folders it cannot use, usage errors ------------------------------------------


@pytest.mark.slow
def test_output_folder_that_is_a_file_is_one_line(tiny_checkpoint, tmp_path):
  inputs = images(tmp_path / 'in', ['a.png'])
  (tmp_path / 'out').write_text('x')
  one_error_line(eval_py(tiny_checkpoint, inputs, tmp_path / 'out'), 'out', 'is a file')
  assert (tmp_path / 'out').read_text() == 'x'


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_read_only_output_folder_is_one_line(tiny_checkpoint, tmp_path):
  inputs = images(tmp_path / 'in', ['a.png'])
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out').chmod(0o555)
  one_error_line(eval_py(tiny_checkpoint, inputs, tmp_path / 'out'), 'out')


@pytest.mark.slow
def test_eval_py_usage_errors_exit_2(tmp_path):
  for argv in (['stray'], ['--config.nothing=1']):
    result = subprocess.run(_eval_py(*argv), cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    assert _last(result.stderr).startswith('eval.py: error: ')
