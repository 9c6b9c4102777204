"""Phase 3: everything jointly, fine-tuning from phase 2 (set --config.init_from to its workdir)."""

from configs import default


def get_config():
  config = default.get_config()
  config.phase = 'joint'
  config.batch_size = 3
  config.learning_rate = 1e-5  # deblur group
  config.sr_learning_rate = 1e-5  # SR group: may differ
  config.num_train_steps = 40 * default.REDS_EPOCH // config.batch_size
  return config
