"""Evaluate on REDS Val300 (frames 9, 19, ..., 99 of the 30 validation sequences).

The paper's protocol for its main table: TLSC on, frames cropped to a multiple
of 8 as the reference does ('seed'), no self-ensemble (add --ensemble for the
x8 numbers).
"""

from configs import eval_default


def get_config():
  config = eval_default.get_config()
  config.data = 'reds'
  config.subset = 'val300'
  config.protocol = 'seed'
  return config
