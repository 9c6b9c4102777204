"""Phase 2: transformation + super-resolution, the deblurring module (and shared PReLU) frozen.

Set --config.init_from to the phase-1 workdir (or an official .pth).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.phase = 'sr'
  config.batch_size = 3
  config.learning_rate = 1e-4
  config.num_train_steps = 40 * default.REDS_EPOCH // config.batch_size
  return config
