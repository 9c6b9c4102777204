"""The paper's final model (Model-2 weights; Model-3 is the same with TLSC at test time).

Also the training defaults (see docs/network.md, "Training"), which the phase configs
(phase1_deblur.py, phase2_sr.py, phase3_joint.py) override.
"""

import ml_collections

from jdsr import config as jdsr_config

REDS_EPOCH = 24_000  # REDS training frames


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.model = jdsr_config.model_config()

  # Training: one phase per run ('deblur', 'sr' or 'joint'; see jdsr/train/loop.py).
  config.phase = 'joint'
  config.init_from = ''  # '', an official .pth, an orbax checkpoint or an earlier phase's workdir
  config.seed = 0  # initial weights (when init_from is '') and the data order, crops, blur kernels
  config.batch_size = 3  # global, over all devices and hosts (any device count: padded, weight 0)
  config.microbatches = 1  # gradient accumulation: the batch in this many parts, one after another
  config.num_train_steps = 40 * REDS_EPOCH // config.batch_size  # 40 epochs
  config.learning_rate = 1e-4  # initial; the deblur group's
  config.sr_learning_rate = ml_collections.FieldReference(None, field_type=float)  # the SR group's initial learning rate; None: learning_rate
  config.min_learning_rate = 1e-6  # cosine annealing, per step, to this
  config.adam_b1 = 0.9
  config.adam_b2 = 0.999
  config.adam_eps = 1e-8
  config.remat = 'auto'  # 'on', 'off' or 'auto' (on CPUs and small GPUs): see jdsr.train.phases.use_remat

  config.log_every = 100
  config.eval_every = 2_000
  config.checkpoint_every = 2_000
  config.keep_checkpoints = 2

  config.data = ml_collections.ConfigDict()
  config.data.source = 'reds'  # 'reds' or 'photos'
  config.data.lr_size = 64  # LR training crop (the HR crop is scale× it)
  # Loading: threads per process (None: one per core) and extra worker processes (0: none).
  config.data.threads = ml_collections.FieldReference(None, field_type=int)
  config.data.workers = 0
  config.data.reds_manual_dir = ''  # extracted zips
  config.data.reds_data_dir = ''  # prepared tfds
  config.data.val_split = 'val300'  # REDS: 'val300' or 'val' (all 3,000 frames)
  config.data.photos_dir = ''  # sharp photos
  config.data.val_photos_dir = ''
  config.data.degradation = ml_collections.ConfigDict(  # for photos: jdsr.data.degrade
      {'kernel_size': 31, 'length': (5.0, 25.0), 'noise': 0.0})
  # Validation images: None for all (REDS: all of val_split), N spread evenly over them, 0: none.
  config.data.val_count = ml_collections.FieldReference(None, field_type=int)
  # Their LR crop: None for REDS's reference crop (320x176 -> 1280x704; photos: the largest
  # multiple of 8 they all have), N for an NxN centre crop.
  config.data.val_lr_size = ml_collections.FieldReference(None, field_type=int)
  config.data.val_images = 3  # image summaries written
  return config
