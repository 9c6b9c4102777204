"""Training-step benchmark: the default model, phase 3 (joint), batch 3, 64x64 LR crops.

Prints the compile time (first step), the median of --steps further steps and
the process's peak RSS, with the machine named. The step is train.py's own:
jdsr.train.loop's jit-compiled step with the phase-3 optimizer (Adam for both
groups), on random data of the training shapes.

    python -m benchmarks.train_step [--phase joint] [--batch 3] [--lr_size 64] [--steps 5] [--remat off]

Compare with the same step in PyTorch: python -m benchmarks.pytorch_baseline --train
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np
from flax import nnx

import jdsr
from benchmarks.forward import machine, peak_rss_mb
from configs import phase3_joint
from jdsr import config as config_lib
from jdsr.train import compiling, phases


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--phase', default='joint', choices=tuple(phases.PHASES))
  parser.add_argument('--batch', type=int, default=3)
  parser.add_argument('--lr_size', type=int, default=64)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--remat', choices=['auto', 'on', 'off'], default=None,
                      help="rematerialise the scanned blocks (default: the config's, 'auto')")
  parser.add_argument('--conv_impl', default='auto', choices=['auto', 'winograd', 'xla'])
  parser.add_argument('--model', default='paper', choices=tuple(config_lib.MODELS),
                      help="the architecture (default: the paper's)")
  args = parser.parse_args()

  config = phase3_joint.get_config()
  config.model = config_lib.MODELS[args.model]()
  config.phase = args.phase
  if args.remat is not None:
    config.remat = args.remat
  config.model.conv_impl = args.conv_impl
  model = jdsr.build_model(config.model, 0)
  graphdef, params = nnx.split(model, nnx.Param)
  del model
  phase = phases.get(args.phase)
  tx = phases.make_optimizer(config)
  state = phases.init_state(params, phase, tx)
  remat = phases.use_remat(config.remat)
  step = compiling.compile_on_first_call(
      jax.jit(phases.make_train_step(graphdef, phase, tx, remat), donate_argnums=0))
  rng = np.random.default_rng(0)
  n, s = args.batch, args.lr_size
  batch = {'blur_lr': rng.random((n, s, s, 3), np.float32),
           'sharp_lr': rng.random((n, s, s, 3), np.float32),
           'sharp_hr': rng.random((n, 4 * s, 4 * s, 3), np.float32),
           'weight': np.ones(n, np.float32)}
  rates = phases.rates_at(phases.learning_rates(config), 1)

  t = time.perf_counter()
  state, out = step(state, batch, rates)
  out['loss'].block_until_ready()
  cold = time.perf_counter() - t
  times = []
  for _ in range(args.steps):
    t = time.perf_counter()
    state, out = step(state, batch, rates)
    out['loss'].block_until_ready()
    times.append(time.perf_counter() - t)
  print(f'machine: {machine()}')
  print(f'train step, {args.model} model, phase {args.phase}, batch {n}, {s}x{s} LR, '
        f'remat {remat}, conv {args.conv_impl}')
  print(f'first step (trace + compile + run): {cold:.1f} s')
  print(f'step: median {statistics.median(times):.2f} s of {args.steps} '
        f'(min {min(times):.2f}, max {max(times):.2f}); {n / statistics.median(times):.2f} '
        'images/s')
  print(f'peak RSS: {peak_rss_mb():,.0f} MB')


if __name__ == '__main__':
  main()
