"""Memory and time of restoring a large image with tiles: 720x1280 -> 2880x5120.

    python -m benchmarks.restore_large [--tile 256] [--no-tlsc] [--height 720 --width 1280]

Prints the peak RSS of the whole process (model, compilation and all tiles)
and the time, with the machine named.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import jdsr
from jdsr.inference import restore as restore_lib
from benchmarks.forward import machine, peak_rss_mb


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--height', type=int, default=720)
  parser.add_argument('--width', type=int, default=1280)
  parser.add_argument('--tile', type=int, default=restore_lib.DEFAULT_TILE)
  parser.add_argument('--no-tlsc', dest='tlsc', action='store_false')
  args = parser.parse_args()
  model = jdsr.build_model(jdsr.model_config())
  image = np.random.default_rng(0).random((args.height, args.width, 3), np.float32)
  start = time.perf_counter()
  out = restore_lib.restore(model, image, tlsc=args.tlsc, tile=args.tile)
  seconds = time.perf_counter() - start
  tiles = (len(restore_lib._starts(args.height, args.tile, restore_lib.DEFAULT_OVERLAP))
           * len(restore_lib._starts(args.width, args.tile, restore_lib.DEFAULT_OVERLAP)))
  print(f'machine: {machine()}')
  print(f'restore {args.height}x{args.width} -> {out.shape[0]}x{out.shape[1]}, '
        f'{tiles} tiles of {args.tile}, TLSC {"on" if args.tlsc else "off"}')
  print(f'time: {seconds:.0f} s ({seconds / tiles:.1f} s per tile, compilation included)')
  print(f'peak RSS: {peak_rss_mb():.0f} MB')


if __name__ == '__main__':
  main()
