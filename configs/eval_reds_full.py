"""Evaluate on the full REDS validation set (3,000 frames), whole frames."""

from configs import eval_default


def get_config():
  config = eval_default.get_config()
  config.data = 'reds'
  config.subset = 'val'
  config.protocol = 'full'
  return config
