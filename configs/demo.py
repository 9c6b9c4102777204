"""The bundled demo model: the same architecture, scaled down to train on a 2-core CPU.

    python train.py --config configs/demo.py:deblur --workdir runs/demo/phase1 ...
    python train.py --config configs/demo.py:sr --workdir runs/demo/phase2 ...
    python train.py --config configs/demo.py:joint --workdir runs/demo/phase3 ...

(the argument after ':' is the phase; scripts/train_demo.sh runs all three).
Every part of the network is there (three-stage MPRNet deblurring module with
CABs, SAMs and the ORSNet, the transformation, RMS-CAB residual groups with
MS-CAM, pixel shuffle x4), narrower and shallower:

  n_feat 16 (paper 96), scale_unetfeats 8 (48), scale_orsnetfeats 8 (32),
  1 CAB per U-Net level (2), 2 CABs per ORB (8), SR trunk 16 channels (64),
  2 residual groups (17) of 3 RMS-CABs (10): 344,425 parameters.

Trained on synthetic motion blur + bicubic x4 of photos (the photo source,
config.data.photos_dir); jdsr/models/demo/MODEL_CARD.md has the data, the commands
and the scores.
"""

from configs import default
from jdsr import config as jdsr_config

PHASES = {  # phase: (steps, batch size, initial learning rate)
    'deblur': (2000, 8, 5e-4),
    'sr': (1000, 8, 5e-4),
    'joint': (5000, 8, 1.5e-3),
}


def get_config(phase: str = 'joint'):
  if phase not in PHASES:
    raise ValueError(f'configs/demo.py:PHASE, PHASE one of {tuple(PHASES)}, got {phase!r}')
  config = default.get_config()
  config.model = jdsr_config.demo_model_config()
  config.phase = phase
  config.num_train_steps, config.batch_size, config.learning_rate = PHASES[phase]
  config.min_learning_rate = 1e-5
  config.data.source = 'photos'
  config.data.lr_size = 48
  config.log_every = 50
  config.eval_every = 250
  config.checkpoint_every = 250
  config.data.val_count = 4
  config.data.val_lr_size = 96
  return config
