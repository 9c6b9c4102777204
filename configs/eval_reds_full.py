"""Evaluate on the full REDS validation set (3,000 frames), whole frames."""

from configs import eval_reds_val300


def get_config():
  config = eval_reds_val300.get_config()
  config.subset = 'val'
  config.protocol = 'full'
  return config
