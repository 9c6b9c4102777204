"""Phases 1 → 2 → 3 chained, as docs/training.md runs them: what each trains, freezes and writes.

The runs are the session's ``training_chain`` (tests/conftest.py): train.py for each phase of
the tiny model on the sample photos, each starting from the one before, then eval.py.
"""

from __future__ import annotations

import orbax.checkpoint as ocp
import pytest
from tensorboard.backend.event_processing import event_file_loader

import jdsr
from configs import tiny
from tests import helpers


def _final(chain, phase: str) -> dict:
  return helpers.params_of(jdsr.load(chain / phase / 'checkpoints' / '4'))


def _best(chain, phase: str) -> dict:
  return helpers.params_of(jdsr.load(chain / phase / 'best' /
                                     str(max(ocp.utils.checkpoint_steps(chain / phase / 'best')))))


@pytest.mark.slow
def test_phase1_trains_deblurring_only_from_fresh_weights(training_chain):
  # From scratch: the super-resolution part it froze is still the seed's initialisation.
  before = helpers.params_of(jdsr.build_model(tiny.get_config().model, 0))
  helpers.assert_trained(helpers.changed(before, _final(training_chain, 'phase1')),
                         {k for k in before if not helpers.is_sr(k)})


@pytest.mark.slow
def test_phase2_starts_from_phase1_and_freezes_deblurring_and_the_shared_prelu(training_chain):
  # Starting from phase 1's best checkpoint: all it froze is exactly that checkpoint's.
  before = _best(training_chain, 'phase1')
  changed = helpers.changed(before, _final(training_chain, 'phase2'))
  helpers.assert_trained(changed, {k for k in before if helpers.is_sr(k)})
  assert "['act']['negative_slope'].value" not in changed


@pytest.mark.slow
def test_phase3_trains_everything_but_the_unused_stage3_head(training_chain):
  before = _best(training_chain, 'phase2')
  changed = helpers.changed(before, _final(training_chain, 'phase3'))
  # The joint loss leaves out the stage-3 image, so its conv ('tail') gets no gradient.
  helpers.assert_trained(changed, set(before) - {"['tail']['kernel'].value"})
  assert "['act']['negative_slope'].value" in changed


@pytest.mark.slow
def test_a_run_writes_checkpoints_metrics_and_images(training_chain):
  run = training_chain / 'phase3'
  assert sorted(ocp.utils.checkpoint_steps(run / 'checkpoints')) == [2, 4]
  tags, psnr = set(), []
  for path in run.glob('events.out.tfevents.*'):
    for event in event_file_loader.EventFileLoader(str(path)).Load():
      for value in event.summary.value:
        tags.add(value.tag)
        if value.tag == 'val/psnr':
          psnr.append(helpers.scalar(value))
  assert {'train/loss', 'train/lr_deblur', 'train/lr_sr', 'val/psnr', 'val/ssim',
          'steps_per_sec'} <= tags
  assert any(t.startswith('val/0_') for t in tags)  # input | output | target
  assert len(psnr) == 2 and all(0 < p < 60 for p in psnr)  # at steps 2 and 4
