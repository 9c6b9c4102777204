"""Restore a folder of your own images (with ground truths beside them, optionally)."""

from configs import eval_reds_val300


def get_config():
  config = eval_reds_val300.get_config()
  config.data = 'folder'
  config.protocol = 'full'
  return config
