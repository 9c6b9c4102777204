"""Make the bundled demo samples (samples/) from public-domain / CC0 photographs.

    python -m scripts.make_samples SKIMAGE_DATA_DIR [--out samples]

SKIMAGE_DATA_DIR is scikit-image's ``skimage/data`` folder (in its wheel), which
holds the four photographs used: astronaut.png (NASA, public domain),
chelsea.png (CC0, Stefan van der Walt), coffee.png (CC0, Rachel Michetti) and
rocket.jpg (SpaceX, public domain). Each is cropped to a multiple of 4 and
written as the sharp HR ground truth (samples/sharp/NAME.png); its degraded
input, written as 8-bit PNG (samples/blurry/NAME.png), is
``jdsr.data.degrade.Degradation()`` with seed = its index in SAMPLES: camera-shake
motion blur (5 to 25 HR pixels) then bicubic x4 downsampling, no noise.
"""

from __future__ import annotations

import argparse
import pathlib

from jdsr.io import imagefile
from jdsr.data import degrade

SAMPLES = ('astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('skimage_data', type=pathlib.Path)
  parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('samples'))
  args = parser.parse_args()
  for index, name in enumerate(SAMPLES):
    rgb = imagefile.read_image(args.skimage_data / name).rgb
    blur_lr, _, sharp_hr = degrade.Degradation()(rgb, seed=index)
    stem = pathlib.Path(name).stem + '.png'
    imagefile.write_image(args.out / 'sharp' / stem, sharp_hr)
    imagefile.write_image(args.out / 'blurry' / stem, blur_lr)
    print(f'{stem}: {sharp_hr.shape[1]}x{sharp_hr.shape[0]} sharp, '
          f'{blur_lr.shape[1]}x{blur_lr.shape[0]} blurry')


if __name__ == '__main__':
  main()
