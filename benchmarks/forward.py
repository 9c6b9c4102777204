"""Forward-pass benchmark of the full model: 176x320 -> 704x1280.

Prints the cold time (first call: trace + compile + run), the warm time
(median of --runs calls), achieved GFLOP/s (2.86 TFLOP per frame, multiply-adds
counted as 2) and the process's peak RSS, with the machine named.

    python -m benchmarks.forward [--conv_impl winograd|xla] [--runs 5] [--tlsc]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

import jax
from flax import nnx

import jdsr

TFLOP_PER_FRAME = 2.86  # the paper's count at a 176x320 input


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  dev = jax.devices()[0]
  return f'{cpu}, {os.cpu_count()} cores; jax {jax.__version__} on {dev.platform} ({dev.device_kind})'


def peak_rss_mb() -> float:
  """Peak resident memory since the start (or since reset_peak_rss) in MB."""
  try:
    with open('/proc/self/status') as f:
      return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) / 1024
  except (OSError, StopIteration):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
  """Start a new peak-RSS window (Linux); False where that is not possible."""
  try:
    with open('/proc/self/clear_refs', 'w') as f:
      f.write('5')
    return True
  except OSError:
    return False


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--conv_impl', default=None, help="'winograd' or 'xla' (default: the config's)")
  parser.add_argument('--runs', type=int, default=5)
  parser.add_argument('--height', type=int, default=176)
  parser.add_argument('--width', type=int, default=320)
  parser.add_argument('--tlsc', action='store_true', help='run with TLSC (base 96, train 64)')
  args = parser.parse_args()

  config = jdsr.model_config()
  if args.conv_impl:
    config.conv_impl = args.conv_impl
  model = jdsr.build_model(config)
  tlsc = jdsr.TLSC() if args.tlsc else None
  forward = lambda m, x: jdsr.apply(m, x, tlsc=tlsc)[1]  # noqa: E731
  x = jax.random.uniform(jax.random.key(0), (1, args.height, args.width, 3))
  jax.block_until_ready((x, nnx.state(model)))

  t = time.perf_counter()
  forward(model, x).block_until_ready()
  cold = time.perf_counter() - t
  rss_cold = peak_rss_mb()
  reset = reset_peak_rss()
  times = []
  for _ in range(args.runs):
    t = time.perf_counter()
    forward(model, x).block_until_ready()
    times.append(time.perf_counter() - t)
  warm = statistics.median(times)
  flop = TFLOP_PER_FRAME * 1e12 * (args.height * args.width) / (176 * 320)
  print(f'machine: {machine()}')
  print(f'model: default ({config.conv_impl} convolutions{", TLSC" if args.tlsc else ""}), '
        f'input {args.height}x{args.width} -> {4 * args.height}x{4 * args.width}')
  print(f'cold (trace + compile + first run): {cold:.1f} s')
  print(f'warm (median of {args.runs}): {warm:.2f} s  '
        f'[min {min(times):.2f}, max {max(times):.2f}]')
  print(f'throughput: {flop / warm / 1e9:.0f} GFLOP/s')
  print(f'peak RSS: {max(rss_cold, peak_rss_mb()):.0f} MB (whole run, compilation included)'
        + (f'; {peak_rss_mb():.0f} MB during the warm runs' if reset else ''))


if __name__ == '__main__':
  main()
