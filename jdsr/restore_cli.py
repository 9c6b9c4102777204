"""jdsr-restore: deblur and upscale ×4 photos, folders of photos, and videos.

    jdsr-restore photo.jpg -o photo_x4.png          # one file
    jdsr-restore photos/ more.png -o restored/      # files and folders into a folder
    jdsr-restore clip.mp4 -o clip_x4.mp4            # a video, frame by frame, audio copied

A folder stands for the images and videos directly in it. With one input file,
``-o`` may name the output file (its extension chooses the format); otherwise
``-o`` is a folder, which gets NAME.png for each image and NAME.EXT for each video
(EXT the input's). As with eval.py, images that share a NAME (a.png, a.jpg) are
named by their whole file name instead (a.png.png, a.jpg.png). Images keep their
layout (grayscale, alpha, 16 bits: see ``jdsr.imageio``); videos are restored by
``jdsr.video``. Every output is written atomically and never over an input; two
inputs that would still share an output (a.png in two folders) are an error. A
file that cannot be read or restored is reported in one line and the others are
still done; the exit status is then 1.

The model is ``--checkpoint`` (an official .pth with the paper's architecture, a
jdsr checkpoint directory or a training workdir), by default the demo model that
ships inside the package (``jdsr.DEMO_MODEL``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import pathlib
import sys
import time

from tqdm import tqdm

WRITE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.tif', '.tiff')  # jdsr.imageio.WRITE_FORMATS


@dataclasses.dataclass(frozen=True)
class Job:
  """One input file and where its restoration goes."""
  source: pathlib.Path
  target: pathlib.Path
  video: bool


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='jdsr-restore', description='Deblur and upscale x4 images and videos (Shoyan 2021).',
      epilog='Example: jdsr-restore photo.jpg -o photo_x4.png; jdsr-restore photos/ -o out/')
  parser.add_argument('inputs', nargs='+', type=pathlib.Path,
                      help='image or video files, or folders of them')
  parser.add_argument('-o', '--output', required=True, type=pathlib.Path,
                      help='output folder; or, for one input file, the output file')
  parser.add_argument('--checkpoint', default=None,
                      help='official .pth, jdsr checkpoint directory or training workdir '
                           '(default: the bundled demo model)')
  parser.add_argument('--tile', type=int, default=None,
                      help='input tile size for large images, a multiple of 8 (0: never tile; '
                           'default: 256-pixel tiles for images larger than that)')
  parser.add_argument('--notlsc', action='store_true',
                      help="plain global pooling instead of TLSC (the paper's Model-3)")
  parser.add_argument('--ensemble', action='store_true',
                      help='average the x8 self-ensemble (8 times slower)')
  parser.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32',
                      help="the convolutions' dtype: bfloat16 is mixed precision, meant for GPUs "
                           '(default: %(default)s)')
  video = parser.add_argument_group('video')
  video.add_argument('--codec', default=None,
                     help='FFmpeg video encoder (default: libx264, libvpx-vp9 for .webm; '
                          'ffv1 or libx264rgb with --crf 0 store the frames losslessly)')
  video.add_argument('--crf', type=int, default=None,
                     help='quality of libx264/libx265/libvpx-vp9 (default 18; 0: lossless)')
  parser.add_argument('-q', '--quiet', action='store_true', help='no progress bars')
  return parser.parse_args(argv)


def plan(inputs: list[pathlib.Path], output: pathlib.Path) -> tuple[list[Job], list[str]]:
  """The jobs for ``inputs`` → ``output``, and a one-line error for each input left out."""
  from jdsr import imageio, video

  sources, errors = [], []
  for path in inputs:
    if path.is_dir():
      try:
        found = sorted(imageio.list_images(path) + video.list_videos(path), key=lambda p: p.name)
      except OSError as e:
        errors.append(f'{path}: cannot list this folder ({e.strerror or e})')
        continue
      if not found:
        errors.append(f'{path}: no images or videos in this folder')
      sources += found
    elif path.exists():
      sources.append(path)
    else:
      errors.append(f'{path}: no such file or folder')

  suffix = output.suffix.lower()
  single = len(inputs) == 1 and len(sources) == 1 and not inputs[0].is_dir()
  names_a_file = not output.is_dir() and suffix in WRITE_SUFFIXES + video.VIDEO_SUFFIXES
  if names_a_file and not single:
    raise ValueError(f'-o {output}: with several inputs (or a folder), -o must be a folder')

  jobs, protected, taken = [], {p.resolve() for p in sources}, {}
  stems = collections.Counter(p.stem for p in sources if not video.is_video(p))
  for source in sources:
    is_video = video.is_video(source)
    if names_a_file:
      if is_video != (suffix in video.VIDEO_SUFFIXES):
        kinds = ', '.join(video.VIDEO_SUFFIXES if is_video else WRITE_SUFFIXES)
        errors.append(f'{output}: {source} is {"a video" if is_video else "an image"}, so its '
                      f'output must be one of {kinds}')
        continue
      target = output
    else:
      name = source.stem if is_video or stems[source.stem] == 1 else source.name
      target = output / (name + (source.suffix.lower() if is_video else '.png'))
    if target.resolve() in protected:
      errors.append(f'{target}: refusing to write over an input; choose another output')
    elif target.resolve() in taken:
      errors.append(f'{source}: its output {target} is also that of {taken[target.resolve()]}; '
                    'restore it separately')
    else:
      taken[target.resolve()] = source
      jobs.append(Job(source, target, is_video))
  return jobs, errors


def restore_image(model, job: Job, options) -> None:
  """Reads, restores and writes one image in its source's layout (gray, alpha, bit depth)."""
  from jdsr import imageio, pixels, restore

  source = imageio.read_image(job.source)
  sr = restore.restore(model, source.rgb, options)
  alpha = None if source.alpha is None else pixels.upscale(source.alpha, restore.SCALE)
  imageio.write_image(job.target, sr, alpha, bits=source.bits, gray=source.gray)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)

  import jdsr  # after parsing: --help stays fast
  from jdsr import config as config_lib, imageio, restore, video

  config_lib.use_compilation_cache()  # as eval.py: the next run does not compile again

  tile, overlap = args.tile, restore.DEFAULT_OVERLAP
  if tile is not None and tile != 0 and (tile < 0 or tile % 8 or tile <= overlap):
    print(f'error: --tile must be 0 (never tile) or a multiple of 8 larger than {overlap}, '
          f'got {args.tile}', file=sys.stderr)
    return 2

  try:
    jobs, errors = plan(args.inputs, args.output)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for message in errors:
    print(f'error: {message}', file=sys.stderr)
  if not jobs:
    return 1

  checkpoint = args.checkpoint or jdsr.DEMO_MODEL
  if args.checkpoint is None:
    print('Using the bundled demo model, a small demonstration; pass --checkpoint (e.g. the '
          'official weights) for real results.', file=sys.stderr)
  try:
    model = jdsr.load(checkpoint)
  except jdsr.CheckpointError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  options = restore.Options(tlsc=None if args.notlsc else jdsr.TLSC(), ensemble=args.ensemble,
                            tile=args.tile, dtype=args.dtype)
  model = options.model(model)  # once, not per file

  done, failed = 0, len(errors)
  start = time.perf_counter()
  bar = tqdm(jobs, desc='restoring', unit='file', disable=args.quiet, file=sys.stderr)
  for job in bar:
    bar.set_postfix_str(job.source.name)
    try:
      if job.video:
        crf = video.DEFAULT_CRF if args.crf is None else args.crf
        video.restore_video(model, job.source, job.target, options, codec=args.codec, crf=crf,
                            progress=not args.quiet)
      else:
        restore_image(model, job, options)
    except (imageio.ImageError, video.VideoError, ValueError, OSError) as e:
      message = (str(e).splitlines() or [type(e).__name__])[0]
      if job.source.name not in message and job.target.name not in message:
        message = f'{job.source}: {message}'
      tqdm.write(f'error: {message}', file=sys.stderr)
      failed += 1
      continue
    done += 1
  seconds = time.perf_counter() - start
  where = jobs[0].target if len(jobs) == 1 else args.output
  print(f'{done} restored, {failed} failed, in {seconds:.1f} s: {os.path.abspath(where)}')
  return 1 if failed else 0


def run() -> None:
  """The ``jdsr-restore`` console script."""
  try:
    sys.exit(main())
  except KeyboardInterrupt:
    print('interrupted', file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':
  run()
