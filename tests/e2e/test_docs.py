"""docs/training.md and docs/evaluation.md: their commands, run as written (see tests/docs.py)."""

from __future__ import annotations

import json

import pytest

from tests import docs


@pytest.mark.slow
def test_training_commands_run_as_written(training_chain):
  ran = json.loads((training_chain / 'commands.json').read_text())
  assert len(ran) == 4, ran
  for phase in ('phase1', 'phase2', 'phase3'):
    assert (training_chain / phase / 'best').is_dir()
  summary = json.loads((training_chain / 'eval' / 'summary.json').read_text())
  assert summary['restored'] == 4 and not summary['failed']


@pytest.mark.slow
def test_evaluation_commands_run_as_written(repo_copy, tmp_path):
  ran = [c for c, _ in docs.run_all('docs/evaluation.md', repo_copy, tmp_path)]
  assert len(ran) == 2, ran
  assert len(list((repo_copy / 'restored' / 'images').glob('*.png'))) == 4
  summary = json.loads((repo_copy / 'scored' / 'summary.json').read_text())
  assert summary['settings']['ensemble'] and summary['scored'] == summary['restored'] >= 1
