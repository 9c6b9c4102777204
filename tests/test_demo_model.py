"""The shipped demo model (jdsr/models/demo): its size, and the scores its model card claims."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

import jdsr
from tests import reference

ROOT = pathlib.Path(__file__).parents[1]
DEMO = ROOT / 'jdsr' / 'models' / 'demo'


def test_demo_model_is_small_and_loads():
  size = sum(f.stat().st_size for f in DEMO.rglob('*') if f.is_file())
  assert size <= 20 * 2**20
  model = jdsr.load(DEMO)
  from configs import demo
  assert dict(model.config) == dict(demo.get_config().model)


def test_model_card_scores_on_kodak24(tmp_path):
  """score_demo.py on Kodak24 gives the numbers the model card states, and they beat bicubic.

  (The card also says the +1.5 dB target over bicubic is not met: +0.44 dB.
  When a model that meets it is shipped, assert the target here.)
  """
  out = tmp_path / 'scores.json'
  photos = reference.SHARED / 'data' / 'photos' / 'kodak24'
  result = subprocess.run([sys.executable, 'scripts/score_demo.py', '--photos', str(photos),
                           '--json', str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  scores = json.loads(out.read_text())
  claimed = json.loads((DEMO / 'scores.json').read_text())
  assert scores['images'] == claimed['images'] == 24
  for key, value in claimed['mean'].items():
    assert scores['mean'][key] == pytest.approx(value, abs=0.01), key
  card = (DEMO / 'MODEL_CARD.md').read_text()
  for key in ('ours_psnr', 'bicubic_psnr', 'sharp_bicubic_psnr', 'stage3_psnr', 'blurry_psnr'):
    assert f'| {claimed["mean"][key]:.2f} |' in card, key
  gain = claimed['mean']['ours_psnr'] - claimed['mean']['bicubic_psnr']
  assert f'{gain:+.2f} dB' in card
  assert claimed['mean']['ours_psnr'] > claimed['mean']['bicubic_psnr'] + 0.3
  assert claimed['mean']['ours_ssim'] > claimed['mean']['bicubic_ssim']
