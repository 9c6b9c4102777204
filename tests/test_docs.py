"""docs/training.md and docs/evaluation.md: their commands, run as written (see tests/docs.py)."""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest

from tests import docs

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def repo_copy(tmp_path_factory) -> pathlib.Path:
  return docs.repo_copy(tmp_path_factory.mktemp('docs'))


def _run_all(doc: str, repo: pathlib.Path, tmp: pathlib.Path) -> list[str]:
  ran = []
  for command in docs.to_run(doc):
    result = subprocess.run(['bash', '-c', command], cwd=repo, env=docs.env(tmp),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f'{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}'
    ran.append(command)
  return ran


def test_training_commands_run_as_written(repo_copy, tmp_path):
  ran = _run_all('docs/training.md', repo_copy, tmp_path)
  assert len(ran) == 4, ran
  for phase in ('phase1', 'phase2', 'phase3'):
    assert (repo_copy / 'runs' / 'try' / phase / 'best').is_dir()
  summary = json.loads((repo_copy / 'runs' / 'try' / 'eval' / 'summary.json').read_text())
  assert summary['restored'] == 4 and not summary['failed']


def test_evaluation_commands_run_as_written(repo_copy, tmp_path):
  ran = _run_all('docs/evaluation.md', repo_copy, tmp_path)
  assert len(ran) == 2, ran
  assert len(list((repo_copy / 'restored' / 'images').glob('*.png'))) == 4
  summary = json.loads((repo_copy / 'scored' / 'summary.json').read_text())
  assert summary['settings']['ensemble'] and summary['scored'] == summary['restored'] >= 1
