"""Score a model on photos with the synthetic degradation: what the demo model card reports.

    python -m scripts.score_demo [--checkpoint CKPT] [--photos DIR] [--json FILE --key NAME]

--photos is any folder of sharp photographs: by default the repository's
samples/sharp. The model card's main table is Kodak24 (the 24 Kodak PhotoCD
images, http://r0k.us/graphics/kodak/, as 500×500 crops), which is not shipped.

Each photo i (in name order) is degraded with ``jdsr.data.degrade.Degradation()``
and seed 10_000 + i (camera-shake motion blur of 5 to 25 pixels, bicubic x4
down, no noise), its blurry LR input is rounded to 8 bits like a real file,
and the model restores it. PSNR/SSIM (``jdsr.evaluation.metrics``: 8-bit RGB, no border
crop) are reported for

* the super-resolved image vs the sharp HR, beside bicubic upscaling of the
  blurry input (the baseline the demo must beat by 1.5 dB) and of the sharp LR
  image (what perfect deblurring alone would give: it shows how much of the
  gap is the blur);
* the deblur-only stage-3 image vs the sharp LR, beside the blurry input.

--json FILE --key NAME writes the numbers into FILE under NAME (the demo
model's scores.json has 'kodak24' and 'samples'), keeping its other entries.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
from tqdm import tqdm

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEED = 10_000


def score(model, photos: pathlib.Path, tlsc) -> dict:
  """Mean PSNR/SSIM of bicubic, ours, blurry LR and stage 3 over the photos in `photos`."""
  import jax.numpy as jnp

  import jdsr
  from jdsr.io import imagefile, pixels
  from jdsr.evaluation import metrics
  from jdsr.data import degrade

  paths = imagefile.list_images(photos)
  if not paths:
    raise SystemExit(f'error: no images in {photos}')
  rows = []
  for i, path in enumerate(tqdm(paths, desc='scoring', unit='image')):
    blur_lr, sharp_lr, sharp_hr = degrade.Degradation()(imagefile.read_image(path).rgb, seed=SEED + i)
    blur_lr = pixels.to_float(pixels.quantize(blur_lr))
    h, w = blur_lr.shape[0] // 8 * 8, blur_lr.shape[1] // 8 * 8  # the model wants multiples of 8
    blur_lr, sharp_lr, sharp_hr = blur_lr[:h, :w], sharp_lr[:h, :w], sharp_hr[:4 * h, :4 * w]
    stages, sr = jdsr.apply(model, jnp.asarray(blur_lr[None]), tlsc=tlsc)
    hr, lr = pixels.quantize(sharp_hr), pixels.quantize(sharp_lr)
    sr, stage3 = pixels.quantize(np.asarray(sr[0])), pixels.quantize(np.asarray(stages[0][0]))
    bicubic, blurry = pixels.upscale(blur_lr), pixels.quantize(blur_lr)
    sharp_bicubic = pixels.upscale(pixels.to_float(lr))
    rows.append({'name': path.name,
                 'ours_psnr': metrics.psnr(sr, hr), 'ours_ssim': metrics.ssim(sr, hr),
                 'bicubic_psnr': metrics.psnr(bicubic, hr), 'bicubic_ssim': metrics.ssim(bicubic, hr),
                 'sharp_bicubic_psnr': metrics.psnr(sharp_bicubic, hr),
                 'sharp_bicubic_ssim': metrics.ssim(sharp_bicubic, hr),
                 'stage3_psnr': metrics.psnr(stage3, lr), 'stage3_ssim': metrics.ssim(stage3, lr),
                 'blurry_psnr': metrics.psnr(blurry, lr), 'blurry_ssim': metrics.ssim(blurry, lr)})
  mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != 'name'}
  return {'images': len(rows), 'mean': mean, 'rows': rows}


def table(result: dict) -> str:
  m = result['mean']
  return '\n'.join([
      f"{result['images']} images        PSNR (dB)   SSIM",
      f"x4, vs sharp HR  ours      {m['ours_psnr']:8.3f}   {m['ours_ssim']:.4f}",
      f"                 bicubic   {m['bicubic_psnr']:8.3f}   {m['bicubic_ssim']:.4f}",
      f"                 gain      {m['ours_psnr'] - m['bicubic_psnr']:+8.3f}",
      f"                 bicubic of the sharp LR {m['sharp_bicubic_psnr']:.3f}   "
      f"{m['sharp_bicubic_ssim']:.4f}  (perfect deblurring, no SR)",
      f"LR, vs sharp LR  stage 3   {m['stage3_psnr']:8.3f}   {m['stage3_ssim']:.4f}",
      f"                 blurry    {m['blurry_psnr']:8.3f}   {m['blurry_ssim']:.4f}",
  ])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--checkpoint', type=pathlib.Path, default=None,
                      help='any checkpoint jdsr.load reads (default: the demo model)')
  parser.add_argument('--photos', type=pathlib.Path, default=ROOT / 'samples' / 'sharp',
                      help='a folder of sharp photographs (default: samples/sharp)')
  parser.add_argument('--tlsc', action=argparse.BooleanOptionalAction, default=False,
                      help='test-time local statistics converter (default: off)')
  parser.add_argument('--json', type=pathlib.Path, help='also write the numbers into this file')
  parser.add_argument('--key', default=None, help='with --json: the entry to write')
  args = parser.parse_args()
  if args.json and not args.key:
    parser.error('--json needs --key (e.g. kodak24 or samples)')

  import jdsr
  from jdsr.io import files
  model = jdsr.load(args.checkpoint or jdsr.DEMO_MODEL)
  result = score(model, args.photos, jdsr.TLSC() if args.tlsc else None)
  print(table(result))
  if args.json:
    scores = json.loads(args.json.read_text()) if args.json.exists() else {}
    scores[args.key] = result
    files.atomic_write(args.json, json.dumps(scores, indent=1) + '\n')


if __name__ == '__main__':
  main()
