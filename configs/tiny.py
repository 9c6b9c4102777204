"""Every part of the architecture at a tiny size, for tests and quick runs."""

from configs import default
from jdsr import config as jdsr_config


def get_config():
  config = default.get_config()
  config.model = jdsr_config.tiny_model_config()
  return config
