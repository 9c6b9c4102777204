"""README.md's commands, run as written (in a copy of the repository), and the demo model's claims."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import av
import pytest
from PIL import Image

from tests import reference

ROOT = pathlib.Path(__file__).parents[1]
# A command whose comment says it needs something (REDS, the official .pth, GPUs), is a
# benchmark (minutes of CPU) or a server is documented as not run here.
MARKER = re.compile(r'#.*\b(needs|benchmark|a server)\b')
SETUP = ('bash scripts/test.sh', 'bash scripts/demo.sh')  # run by CI and by test_demo_sh
# The export and its loaders are run by tests/test_export.py (the loaders without jdsr).
EXPORT_COMMAND = 'python -m jdsr.export --checkpoint jdsr/models/demo --out exported'
# The console scripts of pyproject.toml: here, the checkout's modules (tests/test_package.py
# runs them installed).
SCRIPTS = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['scripts']


def readme_blocks() -> list[tuple[str, str]]:
  """(language, text) of every fenced code block of README.md."""
  text = (ROOT / 'README.md').read_text()
  return re.findall(r'^```(\w*)\n(.*?)^```', text, flags=re.S | re.M)


def readme_commands() -> list[str]:
  """The shell commands of README.md, continuation lines joined."""
  commands = []
  for lang, block in readme_blocks():
    if lang not in ('', 'bash', 'sh'):
      continue
    for command in re.sub(r'\\\n\s*', ' ', block).splitlines():
      if command.strip():
        commands.append(command.strip())
  return commands


def export_loaders() -> list[str]:
  """The README's Python blocks that load the export (run by tests/test_export.py)."""
  return [text for lang, text in readme_blocks() if lang == 'python' and "'exported/" in text]


def test_commands_are_found():
  commands = readme_commands()
  assert 'bash scripts/demo.sh' in commands and 'bash scripts/test.sh' in commands
  assert any(c.startswith('python train.py --config configs/tiny.py') for c in commands)
  assert EXPORT_COMMAND in commands and len(export_loaders()) == 2
  first_words = ('python', 'bash', 'tensorboard', 'pip', *SCRIPTS)
  assert all(c.split()[0] in first_words for c in commands), commands
  assert all(MARKER.search(c) for c in commands if c.startswith('pip')), 'pip: mark what it needs'


def test_test_command_is_what_ci_runs():
  assert 'bash scripts/test.sh' in (ROOT / '.ci' / 'run').read_text()


@pytest.fixture(scope='module')
def repo_copy(tmp_path_factory) -> pathlib.Path:
  """A copy of the working tree, with ../shared beside it, to run the commands in."""
  root = tmp_path_factory.mktemp('readme')
  ignore = shutil.ignore_patterns('.git', '.venv', 'venv', 'runs', 'demo_output', 'restored',
                                  '__pycache__', '.pytest_cache')
  shutil.copytree(ROOT, root / 'jdsr', ignore=ignore)
  (root / 'shared').symlink_to(reference.SHARED.absolute())
  return root / 'jdsr'


def _env(tmp: pathlib.Path) -> dict:
  bin_dir = tmp / 'bin'
  bin_dir.mkdir(exist_ok=True)
  wrapper = bin_dir / 'python'  # not a symlink: that would lose the virtual environment
  wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
  wrapper.chmod(0o755)
  for name, entry in SCRIPTS.items():  # what pip's wrapper does, with the checkout's jdsr
    module, function = entry.split(':')
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; sys.argv[0] = '
                      f"'{name}'; from {module} import {function}; {function}()\" \"$@\"\n")
    script.chmod(0o755)
  return dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')


def test_readme_commands_run_as_written(repo_copy, tmp_path):
  env = _env(tmp_path)
  ran = []
  for command in readme_commands():
    if command in SETUP or command == EXPORT_COMMAND or MARKER.search(command):
      continue
    result = subprocess.run(['bash', '-c', command], cwd=repo_copy, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f'{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}'
    ran.append((command, result.stdout))
  assert len(ran) >= 9, [c for c, _ in ran]

  demo = next(out for c, out in ran if c == 'python eval.py')
  assert 'ours' in demo and 'bicubic' in demo and 'demo_output' in demo
  summary = json.loads((repo_copy / 'demo_output' / 'summary.json').read_text())
  assert summary['restored'] == summary['scored'] == 4 and not summary['failed']
  assert summary['mean']['psnr'] > summary['mean']['bicubic_psnr']  # the demo beats bicubic
  assert summary['mean']['ssim'] > summary['mean']['bicubic_ssim']
  assert len(list((repo_copy / 'demo_output' / 'figures').glob('*.png'))) == 4
  assert len(list((repo_copy / 'restored' / 'images').glob('*.png'))) == 4
  assert (repo_copy / 'runs' / 'try' / 'phase3' / 'best').is_dir()
  assert (repo_copy / 'demo.pth').stat().st_size > 0
  assert Image.open(repo_copy / 'chelsea_x4.png').size == (4 * 112, 4 * 75)  # jdsr-restore
  assert len(list((repo_copy / 'restored_photos').glob('*.png'))) == 4
  with av.open(str(repo_copy / 'clip_x4.mp4')) as clip:
    assert sum(1 for _ in clip.decode(video=0)) == 8 and clip.streams.video[0].width == 448


def test_readme_python_runs(repo_copy):
  blocks = [text for lang, text in readme_blocks()
            if lang == 'python' and text not in export_loaders()]
  assert blocks
  for text in blocks:
    result = subprocess.run([sys.executable, '-c', text], cwd=repo_copy, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


def test_demo_sh():
  """`bash scripts/demo.sh` where its .venv already exists (as in CI, after scripts/test.sh)."""
  if not (ROOT / '.venv' / 'bin' / 'python').exists():
    pytest.skip('no .venv here: scripts/demo.sh would install everything (CI has one)')
  result = subprocess.run(['bash', 'scripts/demo.sh'], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Side-by-side figures:' in result.stdout
