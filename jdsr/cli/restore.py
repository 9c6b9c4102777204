"""jdsr-restore: deblur and upscale ×4 photos, folders of photos, and videos.

    jdsr-restore photo.jpg -o photo_x4.png          # one file
    jdsr-restore photos/ more.png -o restored/      # files and folders into a folder
    jdsr-restore clip.mp4 -o clip_x4.mp4            # a video, frame by frame, audio copied

Inputs and outputs are planned by ``jdsr.io.outputs``: a folder stands for the
images and videos directly in it (other files are listed as skipped); with one
input file ``-o`` may name the output file, otherwise it is a folder that gets
NAME.png per image and NAME.EXT per video. Images keep their layout (grayscale,
alpha, 16 bits: ``jdsr.io.imagefile``); videos are restored by
``jdsr.inference.video``. Every output is written atomically and never over an
input. A file that cannot be read or restored is reported in one line and the
others are still done; the exit status is then 1.

The model is ``--checkpoint`` (``--config`` for a ``.pth`` of another size than
the paper's), by default the demo model that ships inside the package.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

from tqdm import tqdm

from jdsr.cli import common

PROG = 'jdsr-restore'


def parse_args(argv: list[str] | None = None):
  p = common.parser(PROG, 'Deblur and upscale x4 images and videos (Shoyan 2021).',
                    epilog='Example: jdsr-restore photo.jpg -o photo_x4.png; '
                           'jdsr-restore photos/ -o out/')
  p.add_argument('inputs', nargs='*', type=pathlib.Path,
                 help='image or video files, or folders of them')
  p.add_argument('-i', '--input', action='append', default=[], type=pathlib.Path,
                 dest='more_inputs', metavar='INPUT',
                 help='an input as -i names it (Real-ESRGAN), besides the others; repeatable')
  p.add_argument('-o', '--output', required=True, type=pathlib.Path,
                 help='output folder; or, for one input file, the output file')
  p.add_argument('-s', '--outscale', type=float, default=None,
                 help="the images' final scale: the x4 output resized (Lanczos) to this "
                      'multiple of the input, as Real-ESRGAN does (default: 4, not resized)')
  p.add_argument('--suffix', default='',
                 help='in an output folder, NAME_SUFFIX.png instead of NAME.png (default: none)')
  p.add_argument('--ext', default='png', choices=('auto', 'png', 'jpg', 'jpeg', 'tif', 'tiff'),
                 help="the images' format in an output folder; auto: the input's where it is "
                      'one of these, else png (default: %(default)s)')
  common.add_model_args(p)
  p.add_argument('-t', '--tile', type=int, default=None,
                 help='input tile size for large images, a multiple of 8 (0: never tile; '
                      'default: 256-pixel tiles for images larger than that)')
  p.add_argument('--notlsc', action='store_true',
                 help="plain global pooling instead of TLSC (the paper's Model-3)")
  p.add_argument('--ensemble', '--flip_test', action='store_true',
                 help='average the x8 self-ensemble (8 times slower; --flip_test, as the '
                      "official test.py names it)")
  p.add_argument('--runtime', choices=('jax', 'onnxruntime', 'openvino'), default='jax',
                 help='run the network in JAX, or in a CPU inference runtime from an ONNX file '
                      "made once and cached (openvino is the fastest on CPUs; pip install "
                      "'.[openvino]' or '.[onnx]') (default: %(default)s)")
  p.add_argument('--dtype', choices=('float32', 'bfloat16'), default=None,
                 help="the convolutions' dtype: bfloat16 is mixed precision, for GPUs with jax "
                      'and for CPUs with openvino (default: float32; with openvino, bfloat16 '
                      'where the CPU has it)')
  p.add_argument('--cache_dir', default=None,
                 help="where the runtimes' ONNX files are cached (default: $JDSR_CACHE_DIR, "
                      'else ~/.cache/jdsr)')
  p.add_argument('--max_output_megapixels', type=float, default=None,
                 help='refuse outputs larger than this (default: 256, a 4000x4000 input)')
  video = p.add_argument_group('video')
  video.add_argument('--codec', default=None,
                     help='FFmpeg video encoder (default: libx264, libvpx-vp9 for .webm; '
                          'ffv1 or libx264rgb with --crf 0 store the frames losslessly)')
  video.add_argument('--crf', type=int, default=None,
                     help='quality of libx264/libx265/libvpx-vp9 (default 18; 0: lossless)')
  p.add_argument('--overwrite', action='store_true',
                 help='replace existing output files (never an input); without it, an existing '
                      'output is refused')
  p.add_argument('-q', '--quiet', action='store_true', help='no progress bars')
  return p.parse_args(argv)


class _Bars:
  """Progress on stderr: the files, and within a file its tiles or frames; the compile notice."""

  def __init__(self, jobs: int, quiet: bool):
    self.quiet = quiet
    self.files = tqdm(total=jobs, desc='restoring', unit='file', file=sys.stderr,
                      disable=quiet or jobs == 1)
    self.inner = None

  def start(self, name: str, unit: str) -> None:
    self.close_inner()
    self.files.set_postfix_str(name)
    self.unit = unit

  def step(self, done: int, total: int | None) -> None:
    if self.quiet:
      return
    if self.inner is None:
      self.inner = tqdm(total=total, unit=self.unit, file=sys.stderr, leave=self.files.disable,
                        position=0 if self.files.disable else 1, desc=f'  {self.unit}s')
    self.inner.update(done - self.inner.n)

  def compiling(self, height: int, width: int) -> None:
    tqdm.write(f'compiling the model for {width}x{height} inputs (once per size; up to a '
               'minute, seconds when cached)', file=sys.stderr)

  def close_inner(self) -> None:
    if self.inner is not None:
      self.inner.close()
      self.inner = None

  def done(self) -> None:
    self.close_inner()
    self.files.update()

  def close(self) -> None:
    self.close_inner()
    self.files.close()


def _main(argv: list[str] | None) -> int:
  args = parse_args(argv)
  common.quiet(args.verbose)
  args.inputs += args.more_inputs
  if not args.inputs:
    raise common.Failure('name the images, videos or folders to restore (or -i INPUT)', code=2)

  from jdsr import config as config_lib  # after parsing: --help stays fast
  from jdsr.inference import restore, video
  from jdsr.io import imagefile, outputs
  from jdsr.nn import layers

  tile, overlap = args.tile, restore.DEFAULT_OVERLAP
  if tile is not None and tile != 0 and (tile < 0 or tile % 8 or tile <= overlap):
    raise common.Failure(f'--tile must be 0 (never tile) or a multiple of 8 larger than '
                         f'{overlap}, got {args.tile}', code=2)
  if any(str(path) == '-' for path in args.inputs):
    raise common.Failure("'-': reading from standard input is not supported; name the files",
                         code=2)
  inputs, errors = outputs.find(args.inputs)
  if not inputs:
    for message in errors:
      print(f'{PROG}: error: {message}', file=sys.stderr)
    return 1
  single = len(args.inputs) == 1 and len(inputs) == 1 and not inputs[0].in_folder
  try:
    jobs, refused = outputs.plan(inputs, args.output, single=single, overwrite=args.overwrite,
                                 suffix=args.suffix, ext=args.ext)
  except ValueError as e:
    raise common.Failure(str(e), code=2) from None
  for item in inputs:
    if item.kind == outputs.OTHER:
      print(f'skipped: {item.path}: {outputs.skip_reason(item)}', file=sys.stderr)
  errors += refused
  for message in errors:
    print(f'{PROG}: error: {message}', file=sys.stderr)
  if not jobs:
    return 1
  if (problem := _unwritable(jobs)) is not None:
    raise common.Failure(problem)
  if args.outscale not in (None, 4) and any(job.video for job in jobs):
    raise common.Failure('--outscale is for images: videos are written x4', code=2)

  config_lib.use_compilation_cache()  # as eval.py: the next run does not compile again
  try:
    options = restore.Options(tlsc=None if args.notlsc else layers.TLSC(),
                              ensemble=args.ensemble, tile=args.tile, dtype=args.dtype,
                              runtime=args.runtime, cache_dir=args.cache_dir,
                              **({} if args.outscale is None else {'outscale': args.outscale}),
                              **({} if args.max_output_megapixels is None else
                                 {'max_output_megapixels': args.max_output_megapixels}))
  except ValueError as e:
    raise common.Failure(f'--{common.one_line(e)}', code=2) from None
  model = common.load_model(args)
  try:
    model = options.model(model, announce=lambda m: tqdm.write(m, file=sys.stderr))  # once
  except ValueError as e:  # a runtime that is not installed, a dtype it lacks
    raise common.Failure(common.one_line(e)) from None

  done, failed = 0, len(errors)
  start = time.perf_counter()
  bars = _Bars(len(jobs), args.quiet)
  try:
    for job in jobs:
      bars.start(job.source.name, 'frame' if job.video else 'tile')
      progress = restore.Progress(compiling=bars.compiling, tiles=bars.step)
      try:
        if job.video:
          crf = video.DEFAULT_CRF if args.crf is None else args.crf
          video.restore_video(model, job.source, job.target, options, codec=args.codec, crf=crf,
                              progress=restore.Progress(compiling=bars.compiling),
                              frames=bars.step)
        else:
          restore.restore_file(model, job.source, job.target, options, progress)
      except (imagefile.ImageError, video.VideoError, ValueError, OSError) as e:
        failed += 1
        message = common.one_line(e)
        if job.source.name not in message and job.target.name not in message:
          message = f'{job.source}: {message}'
        if isinstance(e, restore.OutputTooLarge):
          message += '; raise --max_output_megapixels if you have the memory'
        tqdm.write(f'{PROG}: error: {message}', file=sys.stderr)
      else:
        done += 1
      bars.done()
  finally:
    bars.close()
  seconds = time.perf_counter() - start
  where = jobs[0].target if len(jobs) == 1 else args.output
  print(f'{done} restored, {failed} failed, in {seconds:.1f} s: {os.path.abspath(where)}')
  return 1 if failed else 0


def _unwritable(jobs) -> str | None:
  """Why an output cannot be written (checked before any work), or None."""
  for folder in sorted({job.target.parent for job in jobs}):
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
      return f'{existing}: not a folder; choose another -o'
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
      return f'{existing}: cannot write there (permission denied); choose another -o'
  return None


main, run = common.entry_points(PROG, _main)

if __name__ == '__main__':
  run()
