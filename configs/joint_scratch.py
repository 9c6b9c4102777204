"""The whole network trained jointly from scratch in one phase (the paper: 0.08 dB below the three phases)."""

from configs import default


def get_config():
  config = default.get_config()
  config.phase = 'joint'
  config.init_from = ''
  config.batch_size = 3
  config.learning_rate = 1e-4
  config.num_train_steps = 40 * default.REDS_EPOCH // config.batch_size
  return config
