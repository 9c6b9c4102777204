"""What `python eval.py` does with no arguments: the bundled demo model restores the bundled samples.

jdsr/models/demo (configs/demo.py, trained on synthetic motion blur of photos)
restores samples/blurry/*.png and is scored against samples/sharp/*.png,
beside bicubic upscaling; restored images and side-by-side figures go to
demo_output/.
"""

import pathlib

from configs import eval_default

ROOT = pathlib.Path(__file__).resolve().parents[1]


def get_config():
  config = eval_default.get_config()
  config.checkpoint = str(ROOT / 'jdsr' / 'models' / 'demo')
  config.data = 'folder'
  config.protocol = 'full'
  config.input_dir = str(ROOT / 'samples' / 'blurry')
  config.target_dir = str(ROOT / 'samples' / 'sharp')
  config.output_dir = 'demo_output'
  return config
