"""The paper's Model-1: 12 residual groups instead of 17."""

from configs import default


def get_config():
  config = default.get_config()
  config.model.n_resgroups = 12
  return config
