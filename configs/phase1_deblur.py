"""Phase 1: the deblurring module alone (the SR part is not run), against the sharp LR."""

from configs import default


def get_config():
  config = default.get_config()
  config.phase = 'deblur'
  config.batch_size = 10
  config.learning_rate = 1e-4
  config.num_train_steps = 40 * default.REDS_EPOCH // config.batch_size  # 40 epochs
  return config
