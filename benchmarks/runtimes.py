"""The forward pass in every runtime against PyTorch, side by side in one run, on the CPU.

One row per runtime and precision, for the paper's model at 1×176×320 →
704×1280 without TLSC (as ``benchmarks.vs_pytorch``'s forward row): the
official-layout PyTorch network (``tests.torch_network``, fp32), jdsr in JAX
(fp32), and jdsr's ONNX file (``jdsr.checkpoints.onnx``) in ONNX Runtime
(fp32) and OpenVINO (fp32, and bf16 where the CPU has it). Each runs in a
process of its own, pinned to the same ``--threads`` cores, and reports its
first call, the median of ``--runs`` calls after it, and its peak RSS; the
table names the CPU. The ONNX file is made once, in a process of its own
before the timed ones (its time and peak memory are printed), in ``--cache_dir``.

``--yardstick`` adds OpenVINO rows for the same network exported from the
PyTorch module (``torch.onnx.export``, NCHW): what the runtime does with the
network's plainest graph, to compare jdsr's graph with.

    python -m benchmarks.runtimes [--threads N] [--runs 3] [--yardstick] [--small]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from benchmarks import vs_pytorch

ROOT = vs_pytorch.ROOT
SHAPE = (1, 3, 176, 320)


def _model(small: bool):
  import jdsr
  return jdsr.build_model(jdsr.tiny_model_config() if small else jdsr.model_config(), 0)


def _measure(side: str, dtype: str, runs: int, small: bool, path: str) -> dict:
  import numpy as np

  x = np.random.default_rng(0).random(SHAPE, np.float32)
  if side == 'pytorch':
    return vs_pytorch.pytorch('forward', dtype, runs, small, 'cpu')
  if side == 'jax':
    return vs_pytorch.ours('forward', dtype, runs, small)
  from jdsr.inference import runtimes

  run = runtimes.load(path, side.removesuffix('-torch-graph'), dtype)
  first, median = vs_pytorch._timed(lambda: run(x), lambda: None, runs)
  version = __import__(side.removesuffix('-torch-graph')).__version__
  return {'first': first, 'median': median, 'memory': vs_pytorch.peak_rss_gib(),
          'name': f'{side.removesuffix("-torch-graph")} {version}'}


def _torch_graph(path: pathlib.Path, small: bool) -> None:
  """The PyTorch module exported to ONNX (NCHW, static 176×320), ×4 image only."""
  import torch

  from tests.torch_network import Net

  class SR(torch.nn.Module):
    def __init__(self, net):
      super().__init__()
      self.net = net

    def forward(self, x):
      return self.net(x)[1]

  net = (Net(c=8, s=4, so=4, num_cab=2, sr=8, groups=2, blocks=2) if small else Net()).eval()
  torch.onnx.export(SR(net), (torch.rand(*SHAPE),), str(path), input_names=['x'],
                    output_names=['sr'], opset_version=17, dynamo=False)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--threads', type=int, default=len(os.sched_getaffinity(0)))
  parser.add_argument('--runs', type=int, default=3, help='timed calls after the first')
  parser.add_argument('--cache_dir', default=None,
                      help='where the ONNX file is cached (default: a temporary folder)')
  parser.add_argument('--yardstick', action='store_true',
                      help="also OpenVINO on PyTorch's own NCHW export of the network")
  parser.add_argument('--small', action='store_true', help='the tiny model (a smoke run)')
  parser.add_argument('--one', nargs=3, metavar=('SIDE', 'DTYPE', 'PATH'), help=argparse.SUPPRESS)
  parser.add_argument('--make', nargs=2, metavar=('WHAT', 'PATH'), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.make:  # a file to time, made in a process of its own
    what, path = args.make
    start = time.perf_counter()
    if what == 'torch-graph':
      _torch_graph(pathlib.Path(path), args.small)
    else:
      from jdsr.inference import runtimes
      path = runtimes.cached_onnx(_model(args.small), None, path)
    print('RESULT ' + json.dumps({'path': str(path), 'seconds': time.perf_counter() - start,
                                  'memory': vs_pytorch.peak_rss_gib()}))
    return
  if args.one:
    os.sched_setaffinity(0, range(args.threads))
    if args.one[0] == 'pytorch':
      import torch
      torch.set_num_threads(args.threads)
    print('RESULT ' + json.dumps(_measure(*args.one[:2], args.runs, args.small, args.one[2])))
    return

  def make(what: str, path) -> dict:
    command = [sys.executable, '-m', 'benchmarks.runtimes', '--make', what, str(path)]
    done = subprocess.run(command + (['--small'] if args.small else []), cwd=ROOT,
                          capture_output=True, text=True)
    line = [l for l in done.stdout.splitlines() if l.startswith('RESULT ')]
    if done.returncode or not line:
      sys.exit(f'making {what} failed: {done.stderr[-3000:]}')
    return json.loads(line[0][7:])

  with tempfile.TemporaryDirectory() as tmp:
    made = make('onnx', args.cache_dir or tmp)
    path = made['path']
    rows = [('pytorch', 'float32', ''), ('jax', 'float32', ''),
            ('onnxruntime', 'float32', path), ('openvino', 'float32', path)]
    bf16 = 'avx512_bf16' in vs_pytorch.cpu() or 'amx_bf16' in vs_pytorch.cpu()
    if bf16:
      rows.append(('openvino', 'bfloat16', path))
    if args.yardstick:
      torch_graph = make('torch-graph', pathlib.Path(tmp) / 'torch_nchw.onnx')['path']
      rows += [('openvino-torch-graph', d, torch_graph) for d in ('float32', 'bfloat16')[:1 + bf16]]

    print(f'# {time.strftime("%Y-%m-%d")}; {vs_pytorch.cpu()}; {args.threads} threads each; '
          f'forward {SHAPE[2]}x{SHAPE[3]} -> {4 * SHAPE[2]}x{4 * SHAPE[3]}, no TLSC; median of '
          f'{args.runs} after the first call' + (' (tiny model)' if args.small else ''))
    print(f'# ONNX file made in {made["seconds"]:.1f} s (or taken from the cache), peak memory '
          f'{made["memory"]:.1f} GiB', flush=True)
    print('| runtime | dtype | time | vs PyTorch fp32 | first call | peak memory |')
    print('|---|---|---|---|---|---|')
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    baseline, names = None, set()
    for side, dtype, file in rows:
      command = [sys.executable, '-m', 'benchmarks.runtimes', '--one', side, dtype, str(file),
                 '--runs', str(args.runs), '--threads', str(args.threads)]
      done = subprocess.run(command + (['--small'] if args.small else []), env=env, cwd=ROOT,
                            capture_output=True, text=True)
      line = [l for l in done.stdout.splitlines() if l.startswith('RESULT ')]
      if done.returncode or not line:
        print(f'| {side} | {dtype} | failed: {(done.stderr.strip().splitlines() or ["?"])[-1]} '
              '| | | |', flush=True)
        continue
      r = json.loads(line[0][7:])
      names.add(r['name'])
      if side == 'pytorch':
        baseline = r['median']
      label = side.replace('-torch-graph', " (PyTorch's NCHW graph)")
      ratio = f'**{baseline / r["median"]:.2f}x**' if baseline else '-'
      print(f'| {label} | {dtype} | {r["median"]:.2f} s | {ratio} | '
            f'{r["first"]:.2f} s | {r["memory"]:.2f} GiB |', flush=True)
    print('# ' + '; '.join(sorted(names)))


if __name__ == '__main__':
  main()
