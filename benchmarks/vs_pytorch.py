"""Ours against the official-layout PyTorch network, side by side in one run, on a CPU or a GPU.

For the forward pass (1×176×320 → 704×1280) and the phase-3 training step
(batch 3, 64×64 → 256×256, the official phase-3 loss, Adam with the two
parameter groups at the phase-3 learning rates), each side runs in a process
of its own, one after the other, with the same cores (``--threads``: both
processes are pinned to the same N cores, and PyTorch told to use N threads).
It prints one Markdown table: the median step time of each side, how much
faster ours is (PyTorch's time / ours), the first call (ours: trace + compile +
run; with a warm persistent compilation cache, less), and each side's peak
memory (CPU: the process's peak RSS; GPU: peak device memory), with the CPU
model and its ISA flags.

The PyTorch side is ``tests.torch_network``: the network with the official
module names (an official state dict loads into it strictly) and the official
phase-3 loss (both tested against ours). On a GPU, fp32 is strict float32 on
both sides (no TF32), and bf16 is ``config.model.dtype='bfloat16'`` against
``torch.autocast``.

    python -m benchmarks.vs_pytorch [--device cpu|cuda] [--threads N] [--runs 3]
                                    [--dtypes float32,bfloat16] [--only forward|train]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ISA_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'amx_tile', 'amx_bf16')


def cpu() -> str:
  """The CPU model, its core count and the vector ISA flags that matter here."""
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          model = line.split(':', 1)[1].strip()
        elif line.startswith('flags'):
          flags = set(line.split(':', 1)[1].split())
  except OSError:
    pass
  return f'{model}, {os.cpu_count()} cores, ISA: {" ".join(f for f in ISA_FLAGS if f in flags) or "?"}'


def peak_rss_gib() -> float:
  with open('/proc/self/status') as f:
    return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) / 2**20


def _timed(step, sync, runs: int) -> tuple[float, float]:
  """(first call, median of ``runs`` calls after it), in seconds."""
  start = time.perf_counter()
  step()
  sync()
  first = time.perf_counter() - start
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    step()
    sync()
    times.append(time.perf_counter() - start)
  return first, statistics.median(times)


def ours(what: str, dtype: str, runs: int, small: bool, tlsc: bool = False) -> dict:
  import jax
  import numpy as np
  from flax import nnx

  import jdsr
  from configs import phase3_joint
  from jdsr import config as config_lib
  from jdsr.train import compiling, phases

  if jax.default_backend() != 'cpu':
    jax.config.update('jax_default_matmul_precision', 'highest')  # no TF32 on GPUs
  config_lib.use_compilation_cache()
  config = phase3_joint.get_config()
  if small:
    config.model = jdsr.tiny_model_config()
  config.model.dtype = dtype
  model = jdsr.build_model(config.model, 0)
  rng = np.random.default_rng(0)
  if what == 'forward':
    x = jax.device_put(rng.random((1, 176, 320, 3), np.float32))
    out = []
    step = lambda: out.append(jdsr.apply(model, x, tlsc=jdsr.TLSC() if tlsc else None)[1])
    sync = lambda: out.pop().block_until_ready()
  else:
    graphdef, params = nnx.split(model, nnx.Param)
    del model
    phase, tx = phases.get('joint'), phases.make_optimizer(config)
    holder = {'state': phases.init_state(params, phase, tx)}
    fn = compiling.compile_on_first_call(jax.jit(  # as train.py compiles its step
        phases.make_train_step(graphdef, phase, tx, phases.use_remat(config.remat)),
        donate_argnums=0))
    batch = jax.device_put({'blur_lr': rng.random((3, 64, 64, 3), np.float32),
                            'sharp_lr': rng.random((3, 64, 64, 3), np.float32),
                            'sharp_hr': rng.random((3, 256, 256, 3), np.float32),
                            'weight': np.ones(3, np.float32)})
    rates = phases.rates_at(phases.learning_rates(config), 1)

    def step():
      holder['state'], holder['out'] = fn(holder['state'], batch, rates)

    sync = lambda: holder['out']['loss'].block_until_ready()
  first, median = _timed(step, sync, runs)
  device = jax.devices()[0]
  memory = ((device.memory_stats() or {}).get('peak_bytes_in_use', float('nan')) / 2**30
            if device.platform != 'cpu' else peak_rss_gib())
  return {'first': first, 'median': median, 'memory': memory,
          'name': f'jax {jax.__version__} ({device.device_kind})'}


def pytorch(what: str, dtype: str, runs: int, small: bool, device: str,
            tlsc: bool = False) -> dict:
  """``tlsc``: the official TLSC network (``tests.torch_network.with_tlsc``), forward only."""
  import torch

  from tests.torch_network import Net, joint_loss, with_tlsc

  torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
  net = Net(c=8, s=4, so=4, num_cab=2, sr=8, groups=2, blocks=2) if small else Net()
  net = (with_tlsc(net) if tlsc else net).to(device)
  autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == 'bfloat16')
  if what == 'forward':
    net.eval()
    x = torch.rand(1, 3, 176, 320, device=device)

    def step():
      with torch.no_grad(), autocast:
        net(x)
  else:
    x, sharp_lr = torch.rand(3, 3, 64, 64, device=device), torch.rand(3, 3, 64, 64, device=device)
    sharp_hr = torch.rand(3, 3, 256, 256, device=device)
    groups = [[p for n, p in net.named_parameters() if ('SRNet_' in n) == sr] for sr in (False, True)]
    opt = torch.optim.Adam([{'params': g, 'lr': 1e-5} for g in groups], betas=(0.9, 0.999),
                           eps=1e-8)

    def step():
      opt.zero_grad()
      with autocast:
        images, sr = net(x)
      loss = joint_loss([i.float() for i in images], sr.float(), sharp_lr, sharp_hr)
      loss.backward()
      opt.step()

  cuda = device == 'cuda'
  if cuda:
    torch.cuda.reset_peak_memory_stats()
  first, median = _timed(step, torch.cuda.synchronize if cuda else (lambda: None), runs)
  memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else peak_rss_gib()
  return {'first': first, 'median': median, 'memory': memory,
          'name': f'torch {torch.__version__}, {torch.get_num_threads()} threads'}


def _one(args) -> None:
  side, what, dtype = args.one
  if args.device == 'cpu':
    os.sched_setaffinity(0, range(args.threads))  # the same cores for both sides
    if side == 'pytorch':
      import torch
      torch.set_num_threads(args.threads)
  result = (ours(what, dtype, args.runs, args.small) if side == 'ours'
            else pytorch(what, dtype, args.runs, args.small, args.device))
  print('RESULT ' + json.dumps(result))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
  parser.add_argument('--threads', type=int, default=len(os.sched_getaffinity(0)),
                      help='CPU: the cores both sides run on (default: all)')
  parser.add_argument('--runs', type=int, default=3, help='timed calls after the first')
  parser.add_argument('--dtypes', default='float32', help="comma-separated: float32,bfloat16")
  parser.add_argument('--only', choices=('forward', 'train'), default=None)
  parser.add_argument('--small', action='store_true', help='the tiny model (a smoke run)')
  parser.add_argument('--one', nargs=3, metavar=('SIDE', 'WHAT', 'DTYPE'), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.one:  # one measurement, in a process of its own
    _one(args)
    return

  env = dict(os.environ, JAX_PLATFORMS='cuda' if args.device == 'cuda' else 'cpu')
  where = cpu() + (f', {args.threads} threads each' if args.device == 'cpu' else '')
  print(f'# {time.strftime("%Y-%m-%d")}; {where}; median of {args.runs} after the first call'
        + (' (tiny model)' if args.small else ''))
  print('| | dtype | jdsr | PyTorch | jdsr vs PyTorch | first call, jdsr / PyTorch | '
        'peak memory, jdsr / PyTorch |')
  print('|---|---|---|---|---|---|---|')
  names = set()
  whats = [w for w in ('forward', 'train') if args.only in (None, w)]
  for what in whats:
    for dtype in args.dtypes.split(','):
      results = {}
      for side in ('ours', 'pytorch'):
        command = [sys.executable, '-m', 'benchmarks.vs_pytorch', '--one', side, what, dtype,
                   '--runs', str(args.runs), '--device', args.device, '--threads', str(args.threads)]
        done = subprocess.run(command + (['--small'] if args.small else []), env=env, cwd=ROOT,
                              capture_output=True, text=True)
        line = [l for l in done.stdout.splitlines() if l.startswith('RESULT ')]
        results[side] = json.loads(line[0][7:]) if done.returncode == 0 and line else None
        if results[side] is None:
          print(f'# {side} {what} {dtype} failed: '
                f'{(done.stderr.strip().splitlines() or ["?"])[-1]}', file=sys.stderr)
        else:
          names.add(results[side]['name'])
      a, b = results['ours'], results['pytorch']
      fmt = lambda r, key, unit, scale: f'{r[key] * scale:.2f} {unit}' if r else 'failed'
      label = ('forward, 176x320' if what == 'forward' else 'phase-3 step, batch 3, 64x64')
      ratio = f'**{b["median"] / a["median"]:.2f}x**' if a and b else '-'
      first = f'{fmt(a, "first", "s", 1)} / {fmt(b, "first", "s", 1)}'
      memory = f'{fmt(a, "memory", "GiB", 1)} / {fmt(b, "memory", "GiB", 1)}'
      print(f'| {label} | {dtype} | {fmt(a, "median", "s", 1)} | {fmt(b, "median", "s", 1)} | '
            f'{ratio} | {first} | {memory} |', flush=True)
  print('# ' + '; '.join(sorted(names)))


if __name__ == '__main__':
  main()
