"""The package: pyproject.toml's dependencies, and pip install into a new virtual environment.

The installation test builds and installs a copy of the checkout (pyproject.toml,
README.md, jdsr/) into a new virtual environment with pip, without the
dependencies (``--no-deps``: this test's environment already has them, and a
``.pth`` file makes them visible there), then runs the console scripts from
another directory, where the checkout is not on ``sys.path``.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import site
import subprocess
import sys
import tomllib

import av
import pytest
from packaging.requirements import Requirement
from PIL import Image


from tests.helpers import ROOT  # noqa: E402
PYPROJECT = tomllib.loads((ROOT / 'pyproject.toml').read_text())


def _requirements(lines) -> set[str]:
  """Requirement lines (comments, blanks and -r includes left out), in one canonical form."""
  found = set()
  for line in lines:
    line = line.split('#')[0].strip()
    if line and not line.startswith('-'):
      req = Requirement(line)
      extras = f'[{",".join(sorted(req.extras))}]' if req.extras else ''
      found.add(f'{req.name.lower().replace("_", "-")}{extras}{req.specifier}')
  return found


def test_dependencies_are_requirements_txt():
  project = PYPROJECT['project']
  runtime = _requirements((ROOT / 'requirements.txt').read_text().splitlines())
  extras = project['optional-dependencies']
  assert _requirements(project['dependencies']) | _requirements(extras['reds']) | _requirements(
      extras['export']) == runtime
  # The core install has no TensorFlow; [reds] and [export] bring it.
  assert not any(r.startswith('tensorflow-cpu') for r in project['dependencies'])
  assert _requirements(extras['reds']) == _requirements(extras['export']) == {
      r for r in runtime if r.startswith('tensorflow-cpu')}
  test_lines = (ROOT / 'requirements-test.txt').read_text().splitlines()
  assert '-r requirements.txt' in test_lines
  assert _requirements(project['optional-dependencies']['test']) == _requirements(test_lines)
  jax = next(r for r in runtime if r.startswith('jax>') or r.startswith('jax<'))
  for cuda in ('cuda12', 'cuda13'):
    assert _requirements(project['optional-dependencies'][cuda]) == {
        jax.replace('jax', f'jax[{cuda}]', 1)}
  assert {r.split('>')[0] for r in _requirements(project['optional-dependencies']['torch'])} == {
      'torch'}


def test_console_scripts_are_the_modules_entry_points():
  import jdsr.cli.app
  import jdsr.cli.convert
  import jdsr.cli.export
  import jdsr.cli.restore
  scripts = PYPROJECT['project']['scripts']
  assert scripts == {'jdsr-restore': 'jdsr.cli.restore:run', 'jdsr-convert': 'jdsr.cli.convert:run',
                     'jdsr-export': 'jdsr.cli.export:run', 'jdsr-app': 'jdsr.cli.app:run'}
  for entry in scripts.values():
    module, function = entry.split(':')
    assert callable(getattr(sys.modules[module], function))


@pytest.fixture(scope='module')
def venv(tmp_path_factory) -> pathlib.Path:
  """A new virtual environment with the package installed by pip from a copy of the checkout."""
  tmp = tmp_path_factory.mktemp('package')
  source = tmp / 'source'
  source.mkdir()
  for name in ('pyproject.toml', 'README.md'):
    shutil.copy(ROOT / name, source / name)
  shutil.copytree(ROOT / 'jdsr', source / 'jdsr',
                  ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
  env = tmp / 'venv'
  subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(env)], check=True)
  python = env / 'bin' / 'python'
  purelib = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                           check=True, capture_output=True, text=True).stdout.strip()
  # The dependencies: those of this test's environment (a path, so no .pth file of theirs runs).
  pathlib.Path(purelib, '_dependencies.pth').write_text('\n'.join(site.getsitepackages()) + '\n')
  result = subprocess.run(
      [sys.executable, '-m', 'pip', '--python', str(python), 'install', '--no-deps',
       '--no-build-isolation', '--no-cache-dir', '--quiet', str(source)],
      capture_output=True, text=True, timeout=600, cwd=tmp)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  return env


def _run(venv: pathlib.Path, cwd: pathlib.Path, *argv) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
  env['PATH'] = f'{venv / "bin"}{os.pathsep}{env["PATH"]}'
  return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=900)


@pytest.mark.slow
def test_installed_package_and_demo_model(venv, tmp_path):
  code = ('import jdsr, jdsr.inference.video\n'
          'print(jdsr.__file__)\n'
          'print(sorted(p.name for p in jdsr.DEMO_MODEL.iterdir()))\n')
  result = _run(venv, tmp_path, venv / 'bin' / 'python', '-c', code)
  assert result.returncode == 0, result.stderr[-3000:]
  location, demo = result.stdout.splitlines()
  assert pathlib.Path(location).is_relative_to(venv) and ROOT not in pathlib.Path(location).parents
  expected = sorted(p.name for p in (ROOT / 'jdsr' / 'models' / 'demo').iterdir())
  assert demo == str(expected) and 'MODEL_CARD.md' in demo and 'params' in demo
  installed = pathlib.Path(location).parent / 'models' / 'demo'
  assert ({p.relative_to(installed) for p in installed.rglob('*') if p.is_file()}
          == {p.relative_to(ROOT / 'jdsr' / 'models' / 'demo')
              for p in (ROOT / 'jdsr' / 'models' / 'demo').rglob('*') if p.is_file()})


@pytest.mark.slow
def test_jdsr_restore_a_photo_and_a_video_from_another_directory(venv, tmp_path):
  shutil.copy(ROOT / 'samples' / 'blurry' / 'chelsea.png', tmp_path / 'photo.png')
  shutil.copy(ROOT / 'samples' / 'clip.mp4', tmp_path / 'clip.mp4')
  result = _run(venv, tmp_path, 'jdsr-restore', 'photo.png', '-o', 'photo_x4.png')
  assert result.returncode == 0, result.stderr[-3000:]
  assert Image.open(tmp_path / 'photo_x4.png').size == (4 * 112, 4 * 75)
  result = _run(venv, tmp_path, 'jdsr-restore', 'clip.mp4', '-o', 'clip_x4.mp4')
  assert result.returncode == 0, result.stderr[-3000:]
  with av.open(str(tmp_path / 'clip_x4.mp4')) as clip:
    stream = clip.streams.video[0]
    assert (stream.width, stream.height, stream.average_rate) == (448, 288, 8)
    assert sum(1 for _ in clip.decode(stream)) == 8


@pytest.mark.slow
def test_the_other_commands_are_installed(venv, tmp_path):
  result = _run(venv, tmp_path, 'jdsr-export', '--help')
  assert result.returncode == 0 and '--checkpoint' in result.stdout
  result = _run(venv, tmp_path, 'jdsr-app', '--help')
  assert result.returncode == 0 and '--runtime' in result.stdout and '127.0.0.1' in result.stdout
  result = _run(venv, tmp_path, 'jdsr-convert', '--checkpoint', 'nothing', '--out', 'x.pth')
  assert result.returncode == 1 and 'nothing' in result.stderr
  assert 'Traceback' not in result.stderr


def test_only_the_pth_reader_imports_torch():
  """The installed package has no torch (an extra): only jdsr.checkpoints.pth may import it."""
  importing = sorted(str(path.relative_to(ROOT)) for path in (ROOT / 'jdsr').rglob('*.py')
                     if re.search(r'^\s*(import torch|from torch\b)', path.read_text(), re.M))
  assert importing == ['jdsr/checkpoints/pth.py'], importing
