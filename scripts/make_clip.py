"""Make the demo video samples/clip.mp4 from a bundled sharp photograph.

    python -m scripts.make_clip [--photo samples/sharp/coffee.png] [--out samples/clip.mp4]

A slow pan across the photo: FRAMES crops of 448×288 pixels, each moved 8 pixels
right of the one before, degraded like the still samples (camera-shake motion blur
of 5 to 25 pixels, ``jdsr.data.degrade.Degradation()`` with seed = the frame's
index, then bicubic ×4 down to 112×72) and encoded as H.264 (yuv420p, crf 18)
at FPS frames per second, without sound.
"""

from __future__ import annotations

import argparse
import pathlib

import av

from jdsr.io import files, imagefile, pixels
from jdsr.data import degrade

FRAMES, FPS, SIZE, STEP = 8, 8, (288, 448), 8  # SIZE: (height, width) of the sharp crops


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--photo', type=pathlib.Path,
                      default=pathlib.Path('samples/sharp/coffee.png'))
  parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('samples/clip.mp4'))
  args = parser.parse_args()
  photo = imagefile.read_image(args.photo).rgb
  (h, w), top = SIZE, (photo.shape[0] - SIZE[0]) // 2

  def write(path: str) -> None:
    with av.open(path, 'w', format='mp4') as out:
      stream = out.add_stream('libx264', rate=FPS)
      stream.width, stream.height, stream.pix_fmt = w // 4, h // 4, 'yuv420p'
      stream.options = {'crf': '18'}
      for i in range(FRAMES):
        crop = photo[top:top + h, STEP * i:STEP * i + w]
        blur_lr, _, _ = degrade.Degradation()(crop, seed=i)
        frame = av.VideoFrame.from_ndarray(pixels.quantize(blur_lr), format='rgb24')
        frame.pts = i
        out.mux(stream.encode(frame))
      out.mux(stream.encode(None))

  files.atomic_write(args.out, write)
  print(f'{args.out}: {FRAMES} frames of {w // 4}x{h // 4} at {FPS} fps')


if __name__ == '__main__':
  main()
