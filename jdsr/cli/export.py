"""jdsr-export: a model as a ``jax.export`` program, a TensorFlow SavedModel, an ONNX file.

    jdsr-export --out exported                          # the demo model
    jdsr-export --checkpoint official.pth --out exported --platforms cpu,cuda
    jdsr-export --checkpoint official.pth --out exported --formats onnx

What the folder holds is ``jdsr.checkpoints.export``'s docstring.
"""

from __future__ import annotations

import json
import pathlib

from jdsr.cli import common

PROG = 'jdsr-export'


def _main(argv: list[str] | None) -> int:
  p = common.parser(PROG, 'Export a model as a jax.export program, a TensorFlow SavedModel '
                          'and an ONNX file.')
  common.add_model_args(p)
  p.add_argument('--out', required=True, help='the export folder to write')
  p.add_argument('--notlsc', action='store_true', help='export without TLSC')
  p.add_argument('--platforms', default=None,
                 help='comma-separated: cpu, cuda, rocm, tpu (default: cpu,cuda)')
  p.add_argument('--formats', default=None,
                 help='comma-separated: jax (model.jax and weights.npz), saved_model (needs '
                      "TensorFlow: pip install '.[export]'), onnx (model.onnx, NCHW; pip "
                      "install '.[onnx]') (default: jax,saved_model)")
  p.add_argument('--no_saved_model', action='store_true',
                 help='leave out the SavedModel (no TensorFlow needed)')
  p.add_argument('--overwrite', action='store_true', help='replace an earlier export')
  args = p.parse_args(argv)
  common.quiet(args.verbose)

  from jdsr.checkpoints import export as export_lib  # after parsing: --help stays fast
  from jdsr.nn import layers

  formats = (export_lib.DEFAULT_FORMATS if args.formats is None else
             tuple(s.strip() for s in args.formats.split(',') if s.strip()))
  if args.no_saved_model:
    formats = tuple(f for f in formats if f != 'saved_model')
  if not formats or set(formats) - set(export_lib.FORMATS):
    raise common.Failure(f'--formats must be some of {",".join(export_lib.FORMATS)}, got '
                         f'{args.formats!r}', code=2)
  model = common.load_input_model(args, args.out)
  platforms = (export_lib.DEFAULT_PLATFORMS if args.platforms is None else
               tuple(s.strip() for s in args.platforms.split(',') if s.strip()))
  try:
    out = export_lib.export(model, pathlib.Path(args.out).absolute(),
                            tlsc=None if args.notlsc else layers.TLSC(), platforms=platforms,
                            formats=formats, overwrite=args.overwrite,
                            source=str(args.checkpoint or 'demo'))
  except ValueError as e:
    raise common.Failure(common.one_line(e)) from None
  info = json.loads((out / export_lib.INFO_FILE).read_text())
  names = [f + ('/' if f == export_lib.SAVED_MODEL_DIR else '') for f in info['files']]
  print(f'wrote {out}: {", ".join(names + [export_lib.INFO_FILE])}')
  return 0


main, run = common.entry_points(PROG, _main)

if __name__ == '__main__':
  run()
