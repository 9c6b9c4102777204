"""jdsr-export: a model as a ``jax.export`` program and a TensorFlow SavedModel.

    jdsr-export --out exported                          # the demo model
    jdsr-export --checkpoint official.pth --out exported --platforms cpu,cuda

What the folder holds is ``jdsr.checkpoints.export``'s docstring.
"""

from __future__ import annotations

import pathlib

from jdsr.cli import common

PROG = 'jdsr-export'


def _main(argv: list[str] | None) -> int:
  p = common.parser(PROG, 'Export a model as a jax.export program and a TensorFlow SavedModel.')
  common.add_model_args(p)
  p.add_argument('--out', required=True, help='the export folder to write')
  p.add_argument('--notlsc', action='store_true', help='export without TLSC')
  p.add_argument('--platforms', default=None,
                 help='comma-separated: cpu, cuda, rocm, tpu (default: cpu,cuda)')
  p.add_argument('--no_saved_model', action='store_true',
                 help='write the jax.export program only (no TensorFlow needed)')
  p.add_argument('--overwrite', action='store_true', help='replace an earlier export')
  args = p.parse_args(argv)
  common.quiet(args.verbose)

  from jdsr.checkpoints import export as export_lib  # after parsing: --help stays fast
  from jdsr.nn import layers

  model = common.load_input_model(args, args.out)
  platforms = (export_lib.DEFAULT_PLATFORMS if args.platforms is None else
               tuple(s.strip() for s in args.platforms.split(',') if s.strip()))
  try:
    out = export_lib.export(model, pathlib.Path(args.out).absolute(), tlsc=None if args.notlsc else layers.TLSC(),
                            platforms=platforms, saved_model=not args.no_saved_model,
                            overwrite=args.overwrite, source=str(args.checkpoint or 'demo'))
  except ValueError as e:
    raise common.Failure(common.one_line(e)) from None
  print(f'wrote {out}: {export_lib.JAX_FILE}, {export_lib.WEIGHTS_FILE}'
        + (f', {export_lib.SAVED_MODEL_DIR}/' if not args.no_saved_model else '')
        + f', {export_lib.INFO_FILE}')
  return 0


main, run = common.entry_points(PROG, _main)

if __name__ == '__main__':
  run()
