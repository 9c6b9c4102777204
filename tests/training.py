"""Training configs for tests: the tiny model on photo folders."""

from __future__ import annotations

import ml_collections

from configs import tiny


def photos_config(photos_dir, val_photos_dir, phase: str = 'deblur',
                  **overrides) -> ml_collections.ConfigDict:
  """configs/tiny.py training ``phase`` on photos; ``overrides``: fields, or dicts merged into sub-configs."""
  config = tiny.get_config()
  config.phase = phase
  config.data.source = 'photos'
  config.data.photos_dir, config.data.val_photos_dir = str(photos_dir), str(val_photos_dir)
  for key, value in overrides.items():
    if isinstance(value, dict):
      config[key].update(value)
    else:
      config[key] = value
  return config
