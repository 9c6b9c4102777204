"""The PyTorch baseline for the benchmarks: the same network in PyTorch, timed here.

The official implementation is not part of this project, so this script times
the same network in PyTorch, ``tests.torch_network.Net`` (the structure of
docs/network.md, "Network", the module names of the official checkpoint, so
that an official state dict loads into it strictly), the way ``forward.py`` and
``train_step.py`` time ours. tests/nn/test_model.py checks that network against
the official implementation's numbers.

    python -m benchmarks.pytorch_baseline [--runs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from tests.torch_network import Net


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--runs', type=int, default=3)
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--train', action='store_true',
                      help='time a phase-3 training step (batch 3, 64x64) instead of a forward')
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  net = Net()
  if args.train:
    x, hr = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 256, 256)
    opt = torch.optim.Adam(net.parameters(), lr=1e-5)

    def step():
      opt.zero_grad()
      images, sr = net(x)
      loss = F.l1_loss(sr, hr) + sum(F.mse_loss(i, x) for i in images[1:])
      loss.backward()
      opt.step()

    what = 'training step (phase-3 shaped loss), batch 3, 64x64 -> 256x256'
  else:
    net.eval()
    x = torch.rand(1, 3, 176, 320)

    def step():
      with torch.no_grad():
        net(x)

    what = 'forward, 176x320 -> 704x1280'
  t = time.perf_counter()
  step()
  first = time.perf_counter() - t
  times = []
  for _ in range(args.runs):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
  warm = statistics.median(times)
  print(f'PyTorch {torch.__version__}, {torch.get_num_threads()} threads: {what}')
  print(f'first: {first:.2f} s; median of {args.runs}: {warm:.2f} s '
        f'[min {min(times):.2f}, max {max(times):.2f}]')
  if not args.train:
    print(f'throughput: {2.86e12 / warm / 1e9:.0f} GFLOP/s')
  print(f'peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB')


if __name__ == '__main__':
  main()
