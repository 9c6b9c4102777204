"""Ours against the official-layout PyTorch network on one GPU: forward and phase-3 step, fp32 and bf16.

Prints one Markdown table: for each of forward (1×176×320 → 704×1280) and the
phase-3 training step (batch 3, 64×64 → 256×256, Adam), in fp32 and bf16, the
median time of ours (``jdsr``: ``config.model.dtype``) and of PyTorch
(``tests.torch_network.Net``, the official module layout; bf16 through
``torch.autocast``), their ratio and each side's peak device memory.

fp32 is strict float32 on both sides (JAX's 'highest' matmul precision, PyTorch's
TF32 off), so that neither gains from TF32. Run by ``benchmarks/gpu_check.sh``;
``--device cpu --small`` is a quick smoke run of the same code on a CPU.

    python benchmarks/gpu_bench.py [--runs 10] [--device cuda|cpu] [--small]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _median_time(step, sync, runs: int) -> float:
  step()  # compile / warm up
  sync()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    step()
    sync()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def ours(what: str, dtype: str, runs: int, small: bool) -> tuple[float, float]:
  import jax
  import numpy as np
  from flax import nnx

  import jdsr
  from configs import phase3_joint
  from jdsr import phases

  config = phase3_joint.get_config()
  if small:
    config.model = jdsr.tiny_model_config()
  config.model.dtype = dtype
  model = jdsr.build_model(config.model, 0)
  rng = np.random.default_rng(0)
  if what == 'forward':
    x = jax.device_put(rng.random((1, 176, 320, 3), np.float32))
    out = []
    step = lambda: out.append(jdsr.apply(model, x)[1])
    sync = lambda: out and out.pop().block_until_ready()
  else:
    graphdef, params = nnx.split(model, nnx.Param)
    phase, tx = phases.get('joint'), phases.make_optimizer(config)
    holder = {'state': phases.init_state(params, phase, tx)}
    fn = jax.jit(phases.make_train_step(graphdef, phase, tx, phases.use_remat(config.remat)),
                 donate_argnums=0)
    batch = jax.device_put({'blur_lr': rng.random((3, 64, 64, 3), np.float32),
                            'sharp_lr': rng.random((3, 64, 64, 3), np.float32),
                            'sharp_hr': rng.random((3, 256, 256, 3), np.float32),
                            'weight': np.ones(3, np.float32)})

    def step():
      holder['state'], holder['out'] = fn(holder['state'], batch)

    sync = lambda: holder['out']['loss'].block_until_ready()
  seconds = _median_time(step, sync, runs)
  stats = jax.devices()[0].memory_stats() or {}
  return seconds, stats.get('peak_bytes_in_use', float('nan')) / 2**30


def pytorch(what: str, dtype: str, runs: int, small: bool, device: str) -> tuple[float, float]:
  import torch
  import torch.nn.functional as F

  from tests.torch_network import Net

  torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
  net = (Net(c=8, s=4, so=4, num_cab=2, sr=8, groups=2, blocks=2) if small else Net()).to(device)
  autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == 'bfloat16')
  if what == 'forward':
    net.eval()
    x = torch.rand(1, 3, 176, 320, device=device)

    def step():
      with torch.no_grad(), autocast:
        net(x)
  else:
    x = torch.rand(3, 3, 64, 64, device=device)
    hr = torch.rand(3, 3, 256, 256, device=device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
      opt.zero_grad()
      with autocast:
        images, sr = net(x)
        loss = F.l1_loss(sr.float(), hr) + sum(F.mse_loss(i.float(), x) for i in images[1:])
      loss.backward()
      opt.step()

  cuda = device == 'cuda'
  if cuda:
    torch.cuda.reset_peak_memory_stats()
  seconds = _median_time(step, torch.cuda.synchronize if cuda else (lambda: None), runs)
  return seconds, torch.cuda.max_memory_allocated() / 2**30 if cuda else float('nan')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--runs', type=int, default=10)
  parser.add_argument('--device', choices=('cuda', 'cpu'), default='cuda')
  parser.add_argument('--small', action='store_true', help='the tiny model (a smoke run)')
  parser.add_argument('--one', nargs=3, metavar=('SIDE', 'WHAT', 'DTYPE'), help=argparse.SUPPRESS)
  args = parser.parse_args()

  if args.one:  # one measurement, in a process of its own (each side's memory, its own peak)
    side, what, dtype = args.one
    if side == 'ours':
      import jax
      jax.config.update('jax_default_matmul_precision', 'highest')
      seconds, gib = ours(what, dtype, args.runs, args.small)
    else:
      seconds, gib = pytorch(what, dtype, args.runs, args.small, args.device)
    print(f'RESULT {seconds} {gib}')
    return

  import subprocess
  env = dict(os.environ, JAX_PLATFORMS='cuda' if args.device == 'cuda' else 'cpu')
  device = subprocess.run(
      [sys.executable, '-c', 'import jax, torch; d = jax.devices()[0]; '
       'print(f"{d.device_kind}; jax {jax.__version__}, torch {torch.__version__}")'],
      env=env, capture_output=True, text=True, check=True).stdout.strip()
  print(f'# {device}; median of {args.runs}' + (' (tiny model)' if args.small else ''))
  print('| | dtype | jdsr | PyTorch | jdsr vs PyTorch | peak memory, jdsr / PyTorch |')
  print('|---|---|---|---|---|---|')
  for what, label in (('forward', 'forward 176x320'), ('train', 'phase-3 step, batch 3, 64x64')):
    for dtype in ('float32', 'bfloat16'):
      results = {}
      for side in ('ours', 'pytorch'):
        command = [sys.executable, __file__, '--one', side, what, dtype, '--runs', str(args.runs),
                   '--device', args.device] + (['--small'] if args.small else [])
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        line = [l for l in done.stdout.splitlines() if l.startswith('RESULT')]
        if done.returncode or not line:
          results[side] = None
          print(f'# {side} {what} {dtype} failed: {(done.stderr.strip().splitlines() or ["?"])[-1]}',
                file=sys.stderr)
        else:
          results[side] = tuple(float(v) for v in line[0].split()[1:])
      a, b = results['ours'], results['pytorch']
      ms = lambda r: f'{r[0] * 1e3:.1f} ms' if r else 'failed'
      ratio = f'{b[0] / a[0]:.2f}x' if a and b else '-'
      gib = lambda r: f'{r[1]:.1f}' if r and r[1] == r[1] else '-'  # nan: not measured (CPU)
      mem = f'{gib(a)} / {gib(b)} GiB'
      print(f'| {label} | {dtype} | {ms(a)} | {ms(b)} | {ratio} | {mem} |', flush=True)


if __name__ == '__main__':
  main()
