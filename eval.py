"""Evaluate the network on REDS, or restore a folder of images.

    python eval.py        # the demo: jdsr/models/demo restores samples/ (configs/eval_demo.py)
    python eval.py --config configs/eval_reds_val300.py \
        --checkpoint official.pth --reds_root /data/REDS --output_dir out/val300
    python eval.py --config configs/eval_default.py --checkpoint runs/phase3 \
        --input_dir my_photos --output_dir out/photos

Writes results.csv (per image), summary.json, images/ and figures/ in the
output directory and prints the mean PSNR/SSIM beside the bicubic baseline.
The settings go one way: flags -> config -> jdsr.inference.restore.Options -> restore.
Each flag below sets the config field of the same name; any field can also be
set with --config.FIELD=VALUE (see configs/eval_default.py for all of them).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jdsr import config as config_lib

try:  # with a default file, ml_collections applies the --config.FIELD overrides here
  _CONFIG = config_flags.DEFINE_config_file(
      'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs',
                             'eval_demo.py'), 'Evaluation config file (default: the demo).')
except (AttributeError, KeyError) as e:
  config_lib.usage_error(sys.argv, config_lib.unknown_field(sys.argv, e) or str(e))
# Shorthands for the config fields people set most; None: keep the config's value.
flags.DEFINE_string('checkpoint', None,
                    'Official .pth, jdsr checkpoint directory or training workdir (its best).')
flags.DEFINE_string('reds_root', None, 'REDS folder holding val_blur_bicubic/ and val_sharp/.')
flags.DEFINE_enum('subset', None, ['val300', 'val'], 'REDS frames: Val300 or all 3,000.')
flags.DEFINE_enum('protocol', None, ['seed', 'full'],
                  "'seed': crop frames to 320x176 -> 1280x704 as the reference; 'full': "
                  'whole frames (padded and cropped back).')
flags.DEFINE_string('input_dir', None, 'Folder of images to restore (instead of REDS).')
flags.DEFINE_string('target_dir', None, 'Ground truths for --input_dir, matched by file name.')
flags.DEFINE_bool('tlsc', None, 'Test-time local statistics converter (the paper\'s Model-3).')
flags.DEFINE_bool('ensemble', None, 'x8 self-ensemble.')
flags.DEFINE_integer('tile', None, 'Input tile size for large images (0: never tile; default: '
                     'automatic, 256 for images larger than that).')
flags.DEFINE_string('output_dir', None, 'Where results, images and figures go.')
flags.DEFINE_bool('save_images', None, 'Write the restored images.')
flags.DEFINE_bool('save_figures', None, 'Write side-by-side figures.')
flags.DEFINE_string('reference_outputs', None,
                    "Folder of the official test script's outputs: report the PSNR between "
                    'them and ours, image by image.')
flags.DEFINE_integer('limit', None, 'Only the first N images (0: all).')
flags.DEFINE_enum('dtype', None, ['float32', 'bfloat16'],
                  "The convolutions' dtype: bfloat16 is mixed precision, for GPUs and TPUs with "
                  'jax and for CPUs with openvino (default: float32; with openvino, bfloat16 '
                  'where the CPU has it).')
flags.DEFINE_enum('runtime', None, ['jax', 'onnxruntime', 'openvino'],
                  'Run the network in JAX, or in a CPU inference runtime from an ONNX file made '
                  'once and cached (docs/export.md).')
# The official test.py's names (--input_dir is the same).
flags.DEFINE_alias('weights', 'checkpoint')
flags.DEFINE_alias('flip_test', 'ensemble')
flags.DEFINE_alias('result_dir', 'output_dir')
config_lib.define_compilation_cache_flag()
FLAGS = flags.FLAGS
_SHORTHANDS = ('checkpoint', 'reds_root', 'subset', 'protocol', 'input_dir', 'target_dir', 'tlsc',
               'ensemble', 'tile', 'output_dir', 'save_images', 'save_figures',
               'reference_outputs', 'limit', 'dtype', 'runtime')


def main(argv):
  if len(argv) > 1:
    print(f'eval.py: error: unexpected arguments: {" ".join(argv[1:])}', file=sys.stderr)
    sys.exit(config_lib.USAGE_ERROR)
  logging.set_verbosity(logging.WARNING)  # orbax logs a dozen INFO lines per checkpoint read
  try:
    config = config_lib.from_flag(_CONFIG)
  except ValueError as e:
    sys.exit(f'error: {e}')
  for name in _SHORTHANDS:
    if FLAGS[name].value is not None:
      config[name] = FLAGS[name].value
  if FLAGS.input_dir:
    config.data = 'folder'
  elif FLAGS.reds_root:
    config.data = 'reds'

  from jdsr import checkpoints  # after flag parsing: --help stays fast
  from jdsr.evaluation import evaluate
  from jdsr.inference import restore
  from jdsr.io import locks

  config_lib.use_compilation_cache(FLAGS.compilation_cache)
  if not config.checkpoint:
    sys.exit('error: no checkpoint: pass --checkpoint (an official .pth, a jdsr checkpoint '
             'directory or a training workdir)')
  try:
    model = checkpoints.load(config.checkpoint, config.model)
    if config.data == 'reds':
      if not config.reds_root:
        sys.exit('error: pass --reds_root (the REDS folder) or --input_dir (a folder of images)')
      items = evaluate.reds_items(config.reds_root, config.subset)
    else:
      items = evaluate.folder_items(config.input_dir, config.target_dir or None)
  except (checkpoints.CheckpointError, ValueError, OSError) as e:
    sys.exit(f'error: {e}')
  if config.limit:
    items = items[:config.limit]

  try:
    options = restore.Options.from_config(config)
  except ValueError as e:
    sys.exit(f'error: {e}')
  try:
    summary = evaluate.evaluate(
        model, items, config.output_dir, options,
        protocol=config.protocol, save_images=config.save_images,
        save_figures=config.save_figures, reference_outputs=config.reference_outputs or None)
  except (OSError, locks.LockError, ValueError) as e:  # the output folder (a file, read-only,
    # full, in use); a runtime that is not installed
    sys.exit(f'error: {e}')
  print(evaluate.table(summary))
  out = os.path.abspath(config.output_dir)
  print(f'Restored images: {os.path.join(out, "images")}\n'
        f'Side-by-side figures: {os.path.join(out, "figures")}\n'
        f'Scores: {os.path.join(out, "results.csv")} and summary.json')
  if summary['failed']:
    sys.exit(1)


if __name__ == '__main__':
  app.run(main, flags_parser=config_lib.parse_flags)
