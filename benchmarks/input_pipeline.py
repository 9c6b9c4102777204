"""Input-pipeline benchmark: training samples per second of each phase, from a REDS-shaped tree.

Builds a fake REDS train split in the official layout (``--sequences`` ×
``--frames`` frames: 1280×720 sharp HR, 320×180 blurry and sharp LR PNGs, made
from the photographs in samples/sharp, panned from frame to frame), prepares
it with ``jdsr.data.reds_tfds.train_source`` (PNG tiles in ArrayRecord), and
prints:

* the prepared size against the PNG files it came from;
* samples/s of ``jdsr.data.pipeline.train_batches`` (grain) for each phase
  (only the images it uses, 64×64 LR crops), on 1 thread (per core) and on all
  cores, beside tf.data driving the very same per-example work
  (``pipeline.element_fn`` in a parallel ``tf.data`` map, as the pipeline used
  to), on 1 thread and on all cores.

Needs TensorFlow (for preparing, and for the tf.data figures): ``pip install '.[reds]'``.

    python -m benchmarks.input_pipeline [--sequences 4] [--frames 15] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import tempfile
import time

os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'  # TensorFlow's start-up notices

from PIL import Image, ImageFilter

import tensorflow_datasets as tfds

from jdsr.train import phases
from jdsr.data import pipeline, reds, reds_tfds

ROOT = pathlib.Path(__file__).resolve().parents[1]
PHASE_KEYS = {name: phase.batch_keys for name, phase in phases.PHASES.items()}


def cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    return platform.processor() or platform.machine()


def write_tree(root: pathlib.Path, sequences: int, frames: int) -> None:
  """REDS train in the official layout, from the sample photographs, panned 8 px a frame."""
  photos = sorted((ROOT / 'samples' / 'sharp').glob('*.png'))
  hr_h, hr_w = reds.HR_SIZE
  dirs = {kind: reds.candidate_dirs(root, kind, 'train')[0]
          for kind in ('blur_bicubic', 'sharp', 'sharp_bicubic')}
  for s in range(sequences):
    photo = Image.open(photos[s % len(photos)]).convert('RGB')
    factor = max((hr_w + 8 * frames) / photo.width, hr_h / photo.height)
    photo = photo.resize((round(photo.width * factor) + 1, round(photo.height * factor) + 1),
                         Image.BICUBIC)
    for f in range(frames):
      hr = photo.crop((8 * f, 0, 8 * f + hr_w, hr_h))
      lr_size = (hr_w // reds.SCALE, hr_h // reds.SCALE)
      images = {'sharp': hr, 'sharp_bicubic': hr.resize(lr_size, Image.BICUBIC),
                'blur_bicubic': hr.filter(ImageFilter.BoxBlur(3)).resize(lr_size, Image.BICUBIC)}
      for kind, image in images.items():
        path = dirs[kind] / f'{s:03d}' / f'{f:08d}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)


def _rate(batches, batch: int, seconds: float) -> float:
  for _ in range(3):  # warm up: threads started, buffers filled
    next(batches)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(batches)
    count += batch
  return count / (time.perf_counter() - start)


def grain_rate(source, keys, threads: int, seconds: float, batch: int = 8) -> float:
  ds = pipeline.train_batches(source, batch_size=batch, seed=0, lr_size=64, keys=keys,
                              threads=threads)
  return _rate(iter(ds), batch, seconds)


def tfdata_rate(source, keys, threads: int, seconds: float, batch: int = 8) -> float:
  """The same elements through a parallel tf.data map (numpy_function) on ``threads`` threads."""
  import tensorflow as tf

  element = pipeline.element_fn(source, seed=0, batch_size=batch, lr_size=64, keys=keys)
  keys = tuple(k for k in pipeline.IMAGE_KEYS if k in keys)

  def load(t):
    out = element(int(t))
    return tuple(out[k] for k in keys)

  ds = tf.data.Dataset.range(2**40).map(
      lambda t: tf.numpy_function(load, [t], [tf.float32] * len(keys)),
      num_parallel_calls=threads, deterministic=True).batch(batch).prefetch(2)
  options = tf.data.Options()
  options.threading.private_threadpool_size = threads
  options.threading.max_intra_op_parallelism = 1
  return _rate(ds.with_options(options).as_numpy_iterator(), batch, seconds)


def size(path: pathlib.Path) -> int:
  return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sequences', type=int, default=4)
  parser.add_argument('--frames', type=int, default=15)
  parser.add_argument('--seconds', type=float, default=8.0, help='per measurement')
  parser.add_argument('--workdir', default=None, help='where to build the tree (default: a temp dir)')
  args = parser.parse_args()
  cores = os.cpu_count()
  tfds.disable_progress_bar()

  with tempfile.TemporaryDirectory() as tmp:
    work = pathlib.Path(args.workdir or tmp)
    manual, data = work / 'manual', work / 'data'
    start = time.perf_counter()
    write_tree(manual, args.sequences, args.frames)
    made = time.perf_counter() - start
    start = time.perf_counter()
    source = reds_tfds.train_source(manual, data)
    prepared = time.perf_counter() - start
    pngs, stored = size(manual), size(data)
    n = len(source)

    print(f'# {cpu_model()}, {cores} cores; {n} REDS-shaped frames (1280x720), 64x64 LR crops')
    print(f'# tree made in {made:.0f} s; prepared in {prepared:.1f} s '
          f'({prepared / n * 1e3:.0f} ms a frame on {cores} cores)')
    print(f'# prepared size: {stored / 2**20:.1f} MiB for {pngs / 2**20:.1f} MiB of PNG frames '
          f'({stored / pngs:.2f}x)')
    print(f'| phase | images | grain, 1 thread | grain, {cores} threads | grain, per core | '
          f'tf.data, 1 thread | tf.data, {cores} threads |')
    print('|---|---|---|---|---|---|---|')
    for phase, keys in PHASE_KEYS.items():
      one = grain_rate(source, keys, 1, args.seconds)
      every = grain_rate(source, keys, cores, args.seconds)
      tf_one = tfdata_rate(source, keys, 1, args.seconds)
      tf_every = tfdata_rate(source, keys, cores, args.seconds)
      print(f'| {phase} | {", ".join(keys)} | {one:.0f}/s | {every:.0f}/s | {every / cores:.0f}/s '
            f'| {tf_one:.0f}/s | {tf_every:.0f}/s |', flush=True)


if __name__ == '__main__':
  main()
