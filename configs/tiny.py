"""Every part of the architecture at a tiny size, for tests and quick runs (trains in seconds)."""

from configs import default
from jdsr import config as jdsr_config


def get_config():
  config = default.get_config()
  config.model = jdsr_config.tiny_model_config()
  config.batch_size = 2
  config.num_train_steps = 4
  config.log_every = 1
  config.eval_every = 2
  config.checkpoint_every = 2
  config.data.lr_size = 16
  config.data.val_count = 2
  config.data.val_lr_size = 16
  config.data.val_images = 1
  return config
