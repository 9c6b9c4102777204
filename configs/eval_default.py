"""Every evaluation setting of eval.py, at its default; the other eval_*.py configs override it.

By default: restore a folder of images (`input_dir`) with TLSC on, no
self-ensemble, tiles chosen automatically. `configs/eval_reds_val300.py` is
the paper's main protocol on REDS.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.checkpoint = ''  # official .pth, jdsr checkpoint directory or training workdir
  # The architecture of an official .pth (which holds none), e.g. jdsr.model_config(n_resgroups=12)
  # in a config file. None: the paper's model; jdsr checkpoints carry their own.
  config.model = config_dict.placeholder(ml_collections.ConfigDict)
  config.data = 'folder'  # 'folder' or 'reds'
  config.input_dir = ''  # data='folder': the images to restore
  config.target_dir = ''  # data='folder': their ground truths (same file names), optional
  config.reds_root = ''  # data='reds': the folder holding val_blur_bicubic/ and val_sharp/
  config.subset = 'val300'  # data='reds': 'val300' or 'val' (all 3,000 frames)
  config.protocol = 'full'  # 'full': whole images; 'seed': REDS frames cropped to 320x176 / 1280x704
  # jdsr.inference.restore.Options: TLSC (the paper's Model-3), x8 self-ensemble, tiling.
  config.tlsc = True
  config.tlsc_base_size = 96
  config.tlsc_train_size = 64
  config.ensemble = False
  config.tile = config_dict.placeholder(int)  # input tile size; None: automatic (above 256 px), 0: never
  config.max_output_megapixels = 256.0  # larger outputs are refused up front (memory)
  # The convolutions': 'float32' or 'bfloat16' (mixed precision); None: float32, or with
  # runtime='openvino', bfloat16 where the CPU has it.
  config.dtype = config_dict.placeholder(str)
  # 'jax', or a CPU inference runtime: 'onnxruntime' or 'openvino' (jdsr.inference.runtimes).
  config.runtime = 'jax'
  config.cache_dir = ''  # where the runtimes' ONNX files are cached ('': ~/.cache/jdsr)
  config.output_dir = 'eval_out'
  config.save_images = True
  config.save_figures = True
  config.reference_outputs = ''  # folder of the official test script's outputs to compare with
  config.limit = 0  # only the first N images (0: all)
  return config
