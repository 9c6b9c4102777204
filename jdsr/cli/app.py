"""jdsr-app: a local web page to restore photos and videos (``pip install '.[app]'``).

    jdsr-app                                   # the demo model, http://127.0.0.1:7860
    jdsr-app --checkpoint model_best.pth --runtime openvino

It binds to 127.0.0.1 (this computer only) unless ``--host`` says otherwise;
Gradio's public sharing is never used. The model is loaded once, with the
options of ``jdsr-restore``, and each job is restored as ``jdsr-restore``
would: the page is ``jdsr.app.ui``, the work ``jdsr.app.jobs``. Uploads and
results live in one temporary folder, removed when the app stops (Ctrl-C or
SIGTERM).
"""

from __future__ import annotations

import os
import sys
import time

from jdsr.cli import common
from jdsr.errors import install_hint

PROG = 'jdsr-app'


def parse_args(argv: list[str] | None = None):
  p = common.parser(PROG, 'A local web page to deblur and upscale x4 images and videos.',
                    epilog='Example: jdsr-app --checkpoint model_best.pth --runtime openvino')
  common.add_model_args(p)
  p.add_argument('--runtime', choices=('jax', 'onnxruntime', 'openvino'), default='jax',
                 help='as jdsr-restore --runtime (default: %(default)s)')
  p.add_argument('--dtype', choices=('float32', 'bfloat16'), default=None,
                 help='as jdsr-restore --dtype')
  p.add_argument('--cache_dir', default=None, help='as jdsr-restore --cache_dir')
  p.add_argument('--max_output_megapixels', type=float, default=None,
                 help='refuse outputs larger than this (default: 256, a 4000x4000 input)')
  p.add_argument('--max_upload_mb', type=float, default=1024,
                 help='refuse larger uploads (default: %(default)s)')
  p.add_argument('--host', default='127.0.0.1',
                 help='address to bind (default: %(default)s, this computer only; 0.0.0.0 '
                      'serves your network: anyone who reaches it can use the app)')
  p.add_argument('--port', type=int, default=7860, help='port (default: %(default)s; 0: any free one)')
  return p.parse_args(argv)


def _main(argv: list[str] | None) -> int:
  args = parse_args(argv)
  common.quiet(args.verbose)
  if not 0 <= args.port <= 65535:
    raise common.Failure(f'--port must be 0 to 65535, got {args.port}', code=2)
  if not args.max_upload_mb > 0:
    raise common.Failure(f'--max_upload_mb must be above 0, got {args.max_upload_mb}', code=2)
  try:
    import gradio  # noqa: F401
  except ImportError:
    raise common.Failure(f"the app needs Gradio: {install_hint('app')}") from None

  from jdsr.app import jobs
  from jdsr.inference import restore
  from jdsr.nn import layers
  from jdsr import config as config_lib

  try:
    options = restore.Options(tlsc=layers.TLSC(), dtype=args.dtype, runtime=args.runtime,
                              cache_dir=args.cache_dir,
                              **({} if args.max_output_megapixels is None else
                                 {'max_output_megapixels': args.max_output_megapixels}))
  except ValueError as e:
    raise common.Failure(f'--{common.one_line(e)}', code=2) from None
  workspace = jobs.Workspace()
  try:
    # Gradio puts its uploads and the copies of what it serves here; read when it is imported.
    os.environ['GRADIO_TEMP_DIR'] = str(workspace.uploads)
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    from jdsr.app import ui

    config_lib.use_compilation_cache()
    model = common.load_model(args)
    restorer = jobs.Restorer(model, options, workspace, announce=lambda m: print(m, file=sys.stderr))
    page = ui.build(restorer, checkpoint=args.checkpoint or 'the demo model')
    page.queue(default_concurrency_limit=1)
    _, url, _ = page.launch(server_name=args.host, server_port=args.port or _free_port(args.host),
                            share=False, quiet=True, show_error=True, prevent_thread_lock=True,
                            max_file_size=int(args.max_upload_mb * 2**20), footer_links=[],
                            allowed_paths=[str(workspace.root / 'jobs')])
    print(f'{PROG}: serving on {url} (Ctrl-C stops it)', file=sys.stderr, flush=True)
    try:
      while page.is_running:  # Ctrl-C and SIGTERM end it as they end jdsr-restore (130, 143)
        time.sleep(0.2)
    finally:
      page.close()
  except jobs.Refused as e:
    raise common.Failure(str(e)) from None
  finally:
    workspace.close()
  return 0


def _free_port(host: str) -> int:
  import socket
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


main, run = common.entry_points(PROG, _main)

if __name__ == '__main__':
  run()
