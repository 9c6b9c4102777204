"""The code blocks of README.md and docs/*.md, and how the tests run them as a user would.

A shell command whose comment says it needs what the repository cannot ship (REDS, the
official weights, a GPU, a second process, a new virtual environment), is a benchmark, or
starts a server, is documented but not run by the docs tests; ``ELSEWHERE`` names the
commands other tests (or CI) run. Every other command runs as written, in a copy of the
repository where the console scripts are the checkout's.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

from tests.helpers import ROOT  # noqa: E402
MARKER = re.compile(r'#.*\b(needs|benchmark|a server)\b')
EXPORT_COMMAND = 'jdsr-export --out exported'
ONNX_EXPORT_COMMAND = 'jdsr-export --out exported_onnx --formats onnx'
FRESH_CLONE_TEST = 'tests/e2e/test_readme.py::test_a_fresh_clone_runs_the_readme_commands_in_order'
ELSEWHERE = {
    'bash scripts/test.sh': 'CI (.ci/run)',
    'bash scripts/test.sh --fast': 'CI runs the whole suite, of which this is a part',
    'bash scripts/demo.sh': FRESH_CLONE_TEST,
    'bash benchmarks/gpu_check.sh --rehearse': '.ci/run',
    'python eval.py': f'{FRESH_CLONE_TEST} (scripts/demo.sh runs it)',
    EXPORT_COMMAND: 'tests/checkpoints/test_export.py',
    ONNX_EXPORT_COMMAND: 'tests/inference/test_runtimes.py',
}
SCRIPTS = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['scripts']
FIRST_WORDS = ('python', 'bash', 'tensorboard', 'pip', *SCRIPTS)


def blocks(doc: str | pathlib.Path) -> list[tuple[str, str]]:
  """(language, text) of every fenced code block of a document (a path relative to ROOT)."""
  text = (ROOT / doc).read_text()
  return re.findall(r'^```(\w*)\n(.*?)^```', text, flags=re.S | re.M)


def commands(doc: str | pathlib.Path) -> list[str]:
  """The shell commands of a document, continuation lines joined."""
  found = []
  for lang, block in blocks(doc):
    if lang in ('', 'bash', 'sh'):
      found += [c.strip() for c in re.sub(r'\\\n\s*', ' ', block).splitlines() if c.strip()]
  return found


def bare(command: str) -> str:
  """A command without its comment."""
  return command.split(' #')[0].strip()


def to_run(doc: str | pathlib.Path) -> list[str]:
  """The commands of a document that the docs tests run."""
  return [c for c in commands(doc) if not MARKER.search(c) and bare(c) not in ELSEWHERE]


def python_blocks(doc: str | pathlib.Path) -> list[str]:
  return [text for lang, text in blocks(doc) if lang == 'python']


def export_loaders() -> list[str]:
  """docs/export.md's Python blocks that load the export (run by tests/checkpoints/test_export.py)."""
  return [text for text in python_blocks('docs/export.md') if "'exported/" in text]


def onnx_loaders() -> list[str]:
  """docs/export.md's Python blocks that run the ONNX export (run by tests/inference/test_runtimes.py)."""
  return [text for text in python_blocks('docs/export.md') if "'exported_onnx/" in text]


def repo_copy(root: pathlib.Path) -> pathlib.Path:
  """A copy of the working tree under ``root``, to run commands in; returns its path.

  In a git checkout the copy holds what git would commit (tracked and untracked files, not the
  ignored ones): virtual environments and outputs that other processes may be writing meanwhile
  (CI builds its compatibility environments beside the suite) are never copied.
  """
  target = root / 'jdsr'
  try:
    listed = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
        capture_output=True, check=True).stdout.decode().split('\0')
  except (OSError, subprocess.CalledProcessError):  # not a git checkout
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(
        '.git', '.venv*', 'venv', 'runs', 'demo_output', 'restored', '__pycache__',
        '.pytest_cache', '.whl', '.cache', '.ci', '*.egg-info'))
    return target
  for name in filter(None, listed):
    if (ROOT / name).is_file():  # listed but deleted in the working tree: not part of it
      (target / name).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(ROOT / name, target / name)
  return target


def run_all(doc: str, repo: pathlib.Path, tmp: pathlib.Path, skip=()) -> list[tuple[str, str]]:
  """Runs ``to_run(doc)`` in ``repo`` as a user would (``env(tmp)``), but those in ``skip``;
  (command, its output) of each. Each must succeed."""
  ran = []
  for command in to_run(doc):
    if command in skip:
      continue
    result = subprocess.run(['bash', '-c', command], cwd=repo, env=env(tmp),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f'{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}'
    ran.append((command, result.stdout + result.stderr))
  return ran


def env(tmp: pathlib.Path) -> dict:
  """The environment of a user with jdsr installed: `python` and the console scripts on PATH."""
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
