"""The shipped demo model (jdsr/models/demo): its size, and the scores its model card claims."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import jdsr
from jdsr import config as config_lib

from tests.helpers import ROOT  # noqa: E402
DEMO = ROOT / 'jdsr' / 'models' / 'demo'
CLAIMED = json.loads((DEMO / 'scores.json').read_text())


def test_demo_model_is_small_and_loads():
  size = sum(f.stat().st_size for f in DEMO.rglob('*') if f.is_file())
  assert size <= 20 * 2**20
  model = jdsr.load(DEMO)
  assert dict(model.config) == dict(config_lib.demo_model_config())
  from configs import demo
  assert dict(demo.get_config().model) == dict(config_lib.demo_model_config())


def test_model_card_states_the_kodak24_scores():
  """The card's table is scores.json's Kodak24 entry (score_demo.py on Kodak24 wrote it)."""
  kodak = CLAIMED['kodak24']
  assert kodak['images'] == 24 == len(kodak['rows'])
  card = (DEMO / 'MODEL_CARD.md').read_text()
  for key in ('ours_psnr', 'bicubic_psnr', 'sharp_bicubic_psnr', 'stage3_psnr', 'blurry_psnr'):
    assert f'| {kodak["mean"][key]:.2f} |' in card, key
  gain = kodak['mean']['ours_psnr'] - kodak['mean']['bicubic_psnr']
  assert f'{gain:+.2f} dB' in card
  assert kodak['mean']['ours_psnr'] > kodak['mean']['bicubic_psnr'] + 0.3
  assert kodak['mean']['ours_ssim'] > kodak['mean']['bicubic_ssim']


@pytest.mark.slow
def test_score_demo_reproduces_the_samples_scores(tmp_path):
  """score_demo.py on the repository's sample photos gives the card's 'samples' numbers."""
  out = tmp_path / 'scores.json'
  result = subprocess.run([sys.executable, '-m', 'scripts.score_demo', '--photos',
                           'samples/sharp', '--json', str(out), '--key', 'samples'],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  scores = json.loads(out.read_text())['samples']
  claimed = CLAIMED['samples']
  assert scores['images'] == claimed['images'] == 4
  for key, value in claimed['mean'].items():
    assert scores['mean'][key] == pytest.approx(value, abs=0.01), key
  assert scores['mean']['ours_psnr'] > scores['mean']['bicubic_psnr']
