"""README.md, docs/usage.md and docs/export.md: their commands and Python, run as written.

The commands run in a copy of the repository (tests/docs.py says which are left to other
tests and which are documented only); tests/e2e/test_docs.py does the same for the other docs.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import site
import subprocess
import sys

import av
import pytest
from PIL import Image

from tests import docs

DOCS = ('README.md', 'docs/usage.md', 'docs/export.md')
ALL_DOCS = ('README.md', *sorted(f'docs/{p.name}' for p in (docs.ROOT / 'docs').glob('*.md')),
            'jdsr/models/demo/MODEL_CARD.md')


@pytest.mark.parametrize('doc', ALL_DOCS)
def test_every_command_is_run_somewhere_or_says_what_it_needs(doc):
  for command in docs.commands(doc):
    assert command.split()[0] in docs.FIRST_WORDS, command
    if command.startswith('pip'):
      assert docs.MARKER.search(command), f'{doc}: pip: say what it needs: {command}'


def test_the_docs_show_the_commands_they_promise():
  readme = docs.commands('README.md')
  assert 'bash scripts/demo.sh' in readme and 'bash scripts/test.sh' in readme
  assert 'bash scripts/test.sh --fast' in (docs.ROOT / 'README.md').read_text()
  assert any(c.startswith('python train.py --config configs/tiny.py')
             for c in docs.commands('docs/training.md'))
  assert docs.EXPORT_COMMAND in map(docs.bare, docs.commands('docs/export.md'))
  assert len(docs.export_loaders()) == 2 and len(docs.onnx_loaders()) == 2
  assert docs.ONNX_EXPORT_COMMAND in map(docs.bare, docs.commands('docs/export.md'))
  assert 'bash scripts/test.sh' in (docs.ROOT / '.ci' / 'run').read_text()
  assert len((docs.ROOT / 'README.md').read_bytes()) <= 12 * 1024


@pytest.mark.slow
def test_readme_usage_and_export_commands_run_as_written(repo_copy, tmp_path):
  """Each command once: usage.md repeats three of README's (the same outputs, so run once).

  README's OpenVINO restore prints no warning of a fork (OpenVINO's telemetry forks when on).
  """
  readme = docs.run_all('README.md', repo_copy, tmp_path)
  assert len(readme) == 4, [c for c, _ in readme]
  assert Image.open(repo_copy / 'chelsea_x4.png').size == (4 * 112, 4 * 75)
  assert len(list((repo_copy / 'restored_photos').glob('*.png'))) == 4
  (fast,) = [out for command, out in readme if '--runtime openvino' in command]
  assert len(list((repo_copy / 'restored_fast').glob('*.png'))) == 4
  assert 'fork' not in fast, fast  # no process forked beside JAX's threads (OpenVINO's telemetry)
  with av.open(str(repo_copy / 'clip_x4.mp4')) as clip:
    assert sum(1 for _ in clip.decode(video=0)) == 8 and clip.streams.video[0].width == 448
  assert any('compiling the model for' in out for _, out in readme)

  done = [c for c, _ in readme]
  usage = docs.run_all('docs/usage.md', repo_copy, tmp_path, skip=done)
  assert len(usage) + sum(c in done for c in docs.to_run('docs/usage.md')) == 6
  assert sum(c in done for c in docs.to_run('docs/usage.md')) == 3  # README's three
  export = docs.run_all('docs/export.md', repo_copy, tmp_path)
  assert len(usage) + len(export) == 5, [c for c, _ in usage + export]
  assert Image.open(repo_copy / 'coffee_x4.png').size == (4 * 150, 4 * 100)
  w, h = Image.open(repo_copy / 'samples' / 'blurry' / 'rocket.png').size
  assert Image.open(repo_copy / 'rocket_x4.png').size == (4 * w, 4 * h)  # --runtime onnxruntime
  with av.open(str(repo_copy / 'clip_x4.mkv')) as clip:
    assert clip.streams.video[0].codec_context.name == 'ffv1'
  assert (repo_copy / 'demo.pth').stat().st_size > 0
  assert (repo_copy / 'demo_ckpt' / 'params').is_dir()


@pytest.mark.slow
@pytest.mark.parametrize('doc', DOCS)
def test_python_runs(repo_copy, doc):
  blocks = [text for text in docs.python_blocks(doc)
            if text not in docs.export_loaders() + docs.onnx_loaders()]
  assert blocks or doc == 'docs/export.md'
  if doc == 'README.md':  # README's snippet runs in the core install, which has no PyTorch
    blocks = ["import sys; sys.modules['torch'] = None  # import torch fails\n" + text
              for text in blocks]
  for text in blocks:
    result = subprocess.run([sys.executable, '-c', text], cwd=repo_copy, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_a_fresh_clone_runs_the_readme_commands_in_order(tmp_path):
  """README's first commands as a new user runs them, in a copy of the repository with what a
  clone has: `bash scripts/demo.sh`, `bash scripts/test.sh` (collecting the tests: CI runs
  them), then, after `source .venv/bin/activate` as README says, `jdsr-restore --help` and its
  first restore command.

  The copy's `.venv` is made first, with this test environment's packages (a .pth file), and
  pip reaches no index: demo.sh and test.sh install what the test environment lacks, jdsr itself
  (editable), and fail if they need anything else.
  """
  clone = docs.repo_copy(tmp_path)
  venv = clone / '.venv'
  subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
  (site_packages,) = venv.glob('lib/python3*/site-packages')
  (site_packages / 'test-environment.pth').write_text(
      ''.join(f'{path}\n' for path in site.getsitepackages()))
  path = os.pathsep.join(p for p in os.environ['PATH'].split(os.pathsep)
                         if not (pathlib.Path(p) / 'jdsr-restore').exists())
  env = dict(os.environ, PATH=path, PIP_NO_INDEX='1', PIP_NO_BUILD_ISOLATION='0',
             PIP_DISABLE_PIP_VERSION_CHECK='1', PYTHON=sys.executable)

  def run(command: str) -> str:
    result = subprocess.run(['bash', '-c', command], cwd=clone, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f'{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return result.stdout + result.stderr

  readme = docs.commands('README.md')
  assert readme[:2] == ['bash scripts/demo.sh', 'bash scripts/test.sh']
  demo = run(readme[0])
  assert 'Side-by-side figures:' in demo and 'source .venv/bin/activate' in demo
  summary = json.loads((clone / 'demo_output' / 'summary.json').read_text())
  assert summary['restored'] == summary['scored'] == 4 and not summary['failed']
  assert summary['mean']['psnr'] > summary['mean']['bicubic_psnr']  # the demo beats bicubic
  assert summary['mean']['ssim'] > summary['mean']['bicubic_ssim']
  m = summary['mean']
  row = (f"| {m['psnr']:.2f} dB / {m['ssim']:.3f} | {m['bicubic_psnr']:.2f} dB / "
         f"{m['bicubic_ssim']:.3f} | ")  # README's table: what the demo prints
  readme_text = (docs.ROOT / 'README.md').read_text()
  (gain,) = re.findall(re.escape(row) + r'([+-][0-9.]+) dB \|', readme_text)
  assert abs(float(gain) - (m['psnr'] - m['bicubic_psnr'])) <= 0.0051  # rounded to 0.01 dB
  assert len(list((clone / 'demo_output' / 'figures').glob('*.png'))) == 4
  assert 'tests collected' in run(f'{readme[1]} --fast --collect-only')

  assert 'source .venv/bin/activate' in (docs.ROOT / 'README.md').read_text()
  activate = 'source .venv/bin/activate && '
  assert run(activate + 'command -v jdsr-restore').strip() == str(venv / 'bin' / 'jdsr-restore')
  assert '--outscale' in run(activate + 'jdsr-restore --help')
  first = next(c for c in readme if c.startswith('jdsr-restore '))
  run(activate + first)
  assert Image.open(clone / 'chelsea_x4.png').size == (4 * 112, 4 * 75)
