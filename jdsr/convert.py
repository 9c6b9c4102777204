"""Convert checkpoints between the official PyTorch format (.pth) and jdsr's orbax checkpoints.

    python -m jdsr.convert --checkpoint official.pth --out checkpoints/official  # .pth -> orbax
    python -m jdsr.convert --checkpoint jdsr/models/demo --out demo.pth         # orbax -> .pth
    python -m jdsr.convert --checkpoint runs/phase3 --out phase3.pth            # a workdir's best

--checkpoint takes whatever jdsr.load takes: an official .pth, a jdsr (orbax)
checkpoint directory or a training workdir (its best checkpoint, else its
latest). --out is written in the official format if it ends in .pth, as a jdsr
orbax checkpoint directory otherwise. A .pth holds no model config: --config
names the architecture (a configs/*.py file, whose `model` is used; the paper's
model by default). --overwrite replaces an existing checkpoint, never anything
else, and never the input.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file whose `model` is the architecture of a .pth checkpoint '
    '(default: the paper\'s model; a jdsr checkpoint carries its own).')
flags.DEFINE_string('checkpoint', None, 'The checkpoint to read: .pth, orbax directory or workdir.')
flags.DEFINE_string('out', None, 'Where to write: NAME.pth (official format) or a directory (orbax).')
flags.DEFINE_bool('overwrite', False, 'Replace --out if it is an existing checkpoint.')
flags.mark_flags_as_required(['checkpoint', 'out'])
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  import jax  # after flag parsing: --help stays fast
  from flax import nnx

  from jdsr import checkpoints, config as config_lib

  try:
    config = config_lib.from_flag(_CONFIG)
    source = checkpoints.resolve(FLAGS.checkpoint)
    if os.path.realpath(source) == os.path.realpath(FLAGS.out):
      raise checkpoints.CheckpointError(f'{FLAGS.out}: that is the input; choose another --out')
    model = checkpoints.load(source, config)
    checkpoints.save(model, FLAGS.out, overwrite=FLAGS.overwrite)
  except (ValueError, OSError) as e:  # CheckpointError, FileExistsError, a bad --config: one line
    print(f'error: {e}', file=sys.stderr)
    return 1
  params = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
  print(f'wrote {FLAGS.out} ({params:,} parameters)')
  return 0


def run() -> None:
  from jdsr import config as config_lib
  app.run(main, flags_parser=config_lib.parse_flags)


if __name__ == '__main__':
  run()
