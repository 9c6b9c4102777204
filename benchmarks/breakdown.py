"""Where the time goes: a per-category breakdown of the forward pass or the phase-3 step.

Runs the compiled forward pass (1×176×320) or phase-3 training step (batch 3,
64×64) once warm, once more under ``jax.profiler``, and adds up the time of
every operation XLA ran (one trace event each, loop bodies included) by the
named scope it comes from (each op's ``op_name`` in the compiled program):

* 3×3 convolutions: the Winograd matrix products, and the Winograd transforms
  (input, kernel, output, and their transposes in the backward pass);
* direct 3×3 convolutions (XLA's: the image convolutions, 3 channels in or out);
* 1×1 convolutions; channel attention and pooling; bilinear resampling;
  pixel shuffle; the optimizer;
* everything else (activations, residual sums, concatenations, the loss, copies).

    python -m benchmarks.breakdown [--what forward|train] [--top N] [--of SCOPE]

``--top N`` also lists the N costliest op names of 'everything else', or of the
category of the named scope ``--of`` (for example ``winograd_transform``).

The operations run one after the other on this backend, so their sum is close
to the step's time; the table says how close.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax
import numpy as np
from flax import nnx

import jdsr
from benchmarks.vs_pytorch import cpu
from configs import phase3_joint
from jdsr.train import compiling, phases
from jdsr.nn import layers, winograd, xla_options

# Innermost scope first wins (a 1×1 conv inside an attention layer counts as a 1×1 conv).
CATEGORIES = [
    (winograd.GEMM_SCOPE, '3×3 conv: Winograd matrix products'),
    (winograd.TRANSFORM_SCOPE, '3×3 conv: Winograd transforms'),
    (winograd.DIRECT_SCOPE, '3×3 conv: direct (image convolutions)'),
    (winograd.CONV1X1_SCOPE, '1×1 convolutions'),
    (layers.ATTENTION_SCOPE, 'channel attention, pooling'),
    (layers.RESAMPLE_SCOPE, 'bilinear resampling'),
    (layers.SHUFFLE_SCOPE, 'pixel shuffle'),
    (phases.OPTIMIZER_SCOPE, 'optimizer (Adam)'),
]
OTHER = 'everything else'


def category(op_name: str) -> str:
  """The category of the innermost known scope in an op's name."""
  best, where = OTHER, -1
  for scope, label in CATEGORIES:
    at = max(op_name.rfind(f'{scope}/'), op_name.rfind(f'{scope})'))
    if at > where:
      best, where = label, at
  return best


def build(what: str):
  """(compiled call, a no-argument function that runs it and waits)."""
  config = phase3_joint.get_config()
  model = jdsr.build_model(config.model, 0)
  rng = np.random.default_rng(0)
  options = xla_options.compiler_options() or None  # as jdsr.apply and train.py compile
  if what == 'forward':
    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)[1])
    args = [state, jax.device_put(rng.random((1, 176, 320, 3), np.float32))]
    return fn.lower(*args).compile(options), lambda c: c(*args).block_until_ready()
  graphdef, params = nnx.split(model, nnx.Param)
  phase, tx = phases.get('joint'), phases.make_optimizer(config)
  fn = jax.jit(phases.make_train_step(graphdef, phase, tx, phases.use_remat(config.remat)))
  args = [phases.init_state(params, phase, tx),
          {'blur_lr': rng.random((3, 64, 64, 3), np.float32),
           'sharp_lr': rng.random((3, 64, 64, 3), np.float32),
           'sharp_hr': rng.random((3, 256, 256, 3), np.float32), 'weight': np.ones(3, np.float32)},
          phases.rates_at(phases.learning_rates(config), 1)]
  return fn.lower(*args).compile(options), lambda c: c(*args)[1]['loss'].block_until_ready()


def op_names(hlo_text: str) -> dict[str, str]:
  """Each HLO instruction's name -> its op_name (the JAX name stack)."""
  return {m.group(1): m.group(2) for m in re.finditer(
      r'^\s*(?:ROOT )?%([\w.\-]+) = .*?metadata=\{[^}]*?op_name="([^"]*)"', hlo_text, re.M)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--what', choices=('forward', 'train'), default='train')
  parser.add_argument('--top', type=int, default=0, help="list the N costliest ops of 'everything else'")
  parser.add_argument('--of', default=None, help='with --top: the ops of this named scope instead')
  args = parser.parse_args()
  compiled, run = build(args.what)
  compiling.release_free_memory()
  run(compiled)  # warm
  names = op_names(compiled.as_text())
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp):
      start = time.perf_counter()
      run(compiled)
      wall = time.perf_counter() - start
    trace, = glob.glob(os.path.join(tmp, 'plugins', 'profile', '*', '*.trace.json.gz'))
    with gzip.open(trace) as f:
      events = json.load(f)['traceEvents']
  seconds, other = collections.Counter(), collections.Counter()
  for e in events:
    if e.get('ph') == 'X' and e.get('name') in names:
      label = category(names[e['name']])
      seconds[label] += e['dur'] / 1e6
      if label == dict(CATEGORIES).get(args.of, OTHER):
        other[re.sub(r'^jit\([^)]*\)/', '', names[e['name']])] += e['dur'] / 1e6
  total = sum(seconds.values())
  what = ('forward pass, 1x176x320 -> 704x1280' if args.what == 'forward'
          else 'phase-3 training step, batch 3, 64x64 -> 256x256')
  print(f'# {what}; {time.strftime("%Y-%m-%d")}; {cpu()}; jax {jax.__version__}')
  print(f'# traced call {wall:.2f} s (profiler on); its operations add up to {total:.2f} s')
  print('| category | seconds | share |')
  print('|---|---|---|')
  for label in [label for _, label in CATEGORIES] + [OTHER]:
    print(f'| {label} | {seconds[label]:.2f} | {100 * seconds[label] / total:.0f}% |')

  for name, t in other.most_common(args.top):
    print(f'  {t:6.2f} s  {name}')


if __name__ == '__main__':
  main()
