"""jdsr-convert: checkpoints between the official PyTorch format (.pth) and jdsr's own.

    jdsr-convert --checkpoint official.pth --out checkpoints/official      # .pth -> jdsr
    jdsr-convert --checkpoint runs/phase3 --out phase3.pth                 # a workdir's best -> .pth
    jdsr-convert --out demo.pth                                            # the demo model -> .pth

--checkpoint takes whatever ``jdsr.load`` takes (default: the demo model). --out
is written in the official format if it ends in .pth, as a jdsr checkpoint (an
orbax directory) otherwise. A .pth holds no model config: --config names its
architecture (the paper's by default). --overwrite replaces an existing
checkpoint, never anything else, and never the input.
"""

from __future__ import annotations

from jdsr.cli import common

PROG = 'jdsr-convert'


def _main(argv: list[str] | None) -> int:
  p = common.parser(PROG, 'Convert a checkpoint: official .pth <-> jdsr checkpoint directory.')
  common.add_model_args(p)
  p.add_argument('--out', required=True,
                 help='where to write: NAME.pth (official format) or a folder (jdsr checkpoint)')
  p.add_argument('--overwrite', action='store_true',
                 help='replace --out if it is an existing checkpoint')
  args = p.parse_args(argv)
  common.quiet(args.verbose)

  import jax  # after parsing: --help stays fast
  from flax import nnx

  from jdsr import checkpoints

  model = common.load_input_model(args, args.out)
  try:
    checkpoints.save(model, args.out, overwrite=args.overwrite)
  except FileExistsError:
    raise common.Failure(f'{args.out} exists; pass --overwrite to replace it') from None
  except ValueError as e:  # CheckpointError
    raise common.Failure(common.one_line(e)) from None
  params = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
  print(f'wrote {args.out} ({params:,} parameters)')
  return 0


main, run = common.entry_points(PROG, _main)

if __name__ == '__main__':
  run()
