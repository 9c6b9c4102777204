"""Validation during training: PSNR/SSIM of the phase's output, and image summaries."""

from __future__ import annotations

from typing import Callable

import numpy as np
from flax import nnx

from jdsr.errors import TrainingError
from jdsr.evaluation import metrics as image_metrics
from jdsr.io import pixels
from jdsr.train import phases


def _panel(image: np.ndarray, height: int) -> np.ndarray:
  """An image nearest-upscaled to `height` rows (for image summaries)."""
  factor = height // image.shape[0]
  return np.repeat(np.repeat(image, factor, 0), factor, 1) if factor > 1 else image


def validate(predict: Callable, params: nnx.State, items: list[dict], phase: phases.Phase,
             num_images: int) -> tuple[dict, dict]:
  """(scalars, images): mean PSNR/SSIM of the output on `items`, and input | output | target panels."""
  psnrs, ssims, images = [], [], {}
  for i, item in enumerate(items):
    out = np.asarray(predict(params, pixels.to_float(item['blur_lr'])[None]))[0]
    if not np.isfinite(out).all():
      raise TrainingError(f"the model's output for validation image {item['id']} is NaN or inf "
                          '(the parameters have diverged)')
    pred, target = pixels.quantize(out), pixels.quantize(item[phase.target])
    psnrs.append(image_metrics.psnr(pred, target))
    ssims.append(image_metrics.ssim(pred, target))
    if i < num_images:
      h = target.shape[0]
      row = [_panel(pixels.quantize(item['blur_lr']), h), pred, target]
      images[f'val/{i}_{item["id"]}'] = np.concatenate(row, axis=1)[None]
  return {'val/psnr': float(np.mean(psnrs)), 'val/ssim': float(np.mean(ssims))}, images
