"""The paper's Baseline: deblurring + transformation + upsampling, no RMS-CAB trunk."""

from configs import default


def get_config():
  config = default.get_config()
  config.model.n_resgroups = 0
  return config
