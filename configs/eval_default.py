"""Evaluate on REDS Val300 (frames 9, 19, ..., 99 of the 30 validation sequences).

The paper's protocol for its main table: TLSC on, frames cropped to a multiple
of 8 as the reference does ('seed'), no self-ensemble (add --ensemble for the
x8 numbers).
"""

import ml_collections

from jdsr import config as jdsr_config


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.model = jdsr_config.model_config()
  config.checkpoint = ''  # official .pth file or jdsr orbax checkpoint directory
  config.data = 'reds'  # 'reds' or 'folder'
  config.reds_root = ''  # the folder holding val_blur_bicubic/ and val_sharp/
  config.subset = 'val300'  # 'val300' or 'val' (all 3,000 frames)
  config.protocol = 'seed'  # 'seed': crop to 320x176 / 1280x704; 'full': whole frames
  config.input_dir = ''  # data='folder': the images to restore
  config.target_dir = ''  # data='folder': their ground truths (same file names), optional
  config.tlsc = True
  config.tlsc_base_size = 96
  config.tlsc_train_size = 64
  config.ensemble = False
  config.tile = -1  # input tile size; -1: automatic (tiles above 256 px), 0: never
  config.output_dir = 'eval_out'
  config.save_images = True
  config.save_figures = True
  config.reference_outputs = ''  # folder of the official test script's outputs to compare with
  config.limit = 0  # only the first N images (0: all)
  return config
