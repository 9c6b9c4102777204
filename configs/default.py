"""The paper's final model (Model-2 weights; Model-3 is the same with TLSC at test time)."""

import ml_collections

from jdsr import config as jdsr_config


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.model = jdsr_config.model_config()
  return config
