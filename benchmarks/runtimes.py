"""The forward pass in every runtime against PyTorch, side by side in one run, on the CPU.

One row per runtime, precision and graph, for the paper's model at 1×176×320 →
704×1280, without TLSC (the plain graph) and with it (``jdsr.TLSC()``, what
``jdsr-restore`` runs by default): the official-layout PyTorch network
(``tests.torch_network``, fp32; with TLSC, ``with_tlsc``: the official TLSC
network), jdsr in JAX (fp32), and jdsr's ONNX file (``jdsr.checkpoints.onnx``)
in ONNX Runtime (fp32) and OpenVINO (fp32, and bf16 where the CPU has it). Each
runs in a process of its own, pinned to the same ``--threads`` cores, and
reports its first call, the median of ``--runs`` calls after it, and its peak
RSS; the file's size is beside it, and the table names the CPU. Each row is
compared with PyTorch fp32 on the same graph (plain with plain, TLSC with the
official TLSC network). The ONNX files are made once, each in a process of its
own before the timed ones (time and peak memory printed), in ``--cache_dir``.

``--yardstick`` adds OpenVINO rows for the same networks exported from the
PyTorch modules (``torch.onnx.export``, NCHW, static shape): what the runtime
does with the network's plainest graph, to compare jdsr's graph with.
``--graphs plain`` or ``--graphs tlsc`` keeps one of the two.

    python -m benchmarks.runtimes [--threads N] [--runs 3] [--yardstick] [--small]
                                  [--graphs plain,tlsc]
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


def _measure(side: str, dtype: str, graph: str, runs: int, small: bool, path: str) -> dict:
  import numpy as np

  tlsc = graph == 'tlsc'
  x = np.random.default_rng(0).random(SHAPE, np.float32)
  if side == 'pytorch':
    return vs_pytorch.pytorch('forward', dtype, runs, small, 'cpu', tlsc=tlsc)
  if side == 'jax':
    return vs_pytorch.ours('forward', dtype, runs, small, tlsc=tlsc)
  from jdsr.inference import runtimes

  run = runtimes.load(path, side.removesuffix('-torch-graph'), dtype)
  first, median = vs_pytorch._timed(lambda: run(x), lambda: None, runs)
  version = __import__(side.removesuffix('-torch-graph')).__version__
  return {'first': first, 'median': median, 'memory': vs_pytorch.peak_rss_gib(),
          'name': f'{side.removesuffix("-torch-graph")} {version}'}


def _torch_graph(path: pathlib.Path, small: bool, tlsc: bool) -> None:
  """The PyTorch module (with TLSC: the official TLSC network) exported to ONNX (NCHW, static
  176×320), ×4 image only."""
  import torch

  from tests.torch_network import Net, with_tlsc

  class SR(torch.nn.Module):
    def __init__(self, net):
      super().__init__()
      self.net = net

    def forward(self, x):
      return self.net(x)[1]

  net = Net(c=8, s=4, so=4, num_cab=2, sr=8, groups=2, blocks=2) if small else Net()
  net = (with_tlsc(net) if tlsc else net).eval()
  torch.onnx.export(SR(net), (torch.rand(*SHAPE),), str(path), input_names=['x'],
                    output_names=['sr'], opset_version=17, dynamo=False)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--threads', type=int, default=len(os.sched_getaffinity(0)))
  parser.add_argument('--runs', type=int, default=3, help='timed calls after the first')
  parser.add_argument('--cache_dir', default=None,
                      help='where the ONNX files are cached (default: a temporary folder)')
  parser.add_argument('--yardstick', action='store_true',
                      help="also OpenVINO on PyTorch's own NCHW export of the networks")
  parser.add_argument('--graphs', default='plain,tlsc',
                      help='comma-separated: plain (no TLSC), tlsc (jdsr.TLSC())')
  parser.add_argument('--small', action='store_true', help='the tiny model (a smoke run)')
  parser.add_argument('--one', nargs=4, metavar=('SIDE', 'DTYPE', 'GRAPH', 'PATH'),
                      help=argparse.SUPPRESS)
  parser.add_argument('--make', nargs=3, metavar=('WHAT', 'GRAPH', 'PATH'), help=argparse.SUPPRESS)
  args = parser.parse_args()
  graphs = args.graphs.split(',')
  if not graphs or set(graphs) - {'plain', 'tlsc'}:
    parser.error(f'--graphs: plain, tlsc or both, not {args.graphs!r}')
  small = ['--small'] if args.small else []
  if args.make:  # a file to time, made in a process of its own
    what, graph, path = args.make
    start = time.perf_counter()
    if what == 'torch-graph':
      _torch_graph(pathlib.Path(path), args.small, graph == 'tlsc')
    else:
      import jdsr
      from jdsr.inference import runtimes
      path = runtimes.cached_onnx(_model(args.small), jdsr.TLSC() if graph == 'tlsc' else None,
                                  path)
    print('RESULT ' + json.dumps({'path': str(path), 'seconds': time.perf_counter() - start,
                                  'memory': vs_pytorch.peak_rss_gib()}))
    return
  if args.one:
    os.sched_setaffinity(0, range(args.threads))
    if args.one[0] == 'pytorch':
      import torch
      torch.set_num_threads(args.threads)
    side, dtype, graph, path = args.one
    print('RESULT ' + json.dumps(_measure(side, dtype, graph, args.runs, args.small, path)))
    return

  def make(what: str, graph: str, path) -> dict:
    command = [sys.executable, '-m', 'benchmarks.runtimes', '--make', what, graph, str(path)]
    done = subprocess.run(command + small, cwd=ROOT, capture_output=True, text=True)
    line = [l for l in done.stdout.splitlines() if l.startswith('RESULT ')]
    if done.returncode or not line:
      if what == 'torch-graph':  # a yardstick: its rows are left out, the others still run
        last = (done.stderr.strip().splitlines() or [f'exit status {done.returncode}'])[-1]
        print(f'# making {what} ({graph}) failed, its rows left out: {last}', flush=True)
        return None
      sys.exit(f'making {what} ({graph}) failed: {done.stderr[-3000:]}')
    return json.loads(line[0][7:])

  bf16 = 'avx512_bf16' in vs_pytorch.cpu() or 'amx_bf16' in vs_pytorch.cpu()
  print(f'# {time.strftime("%Y-%m-%d")}; {vs_pytorch.cpu()}; {args.threads} threads each; '
        f'forward {SHAPE[2]}x{SHAPE[3]} -> {4 * SHAPE[2]}x{4 * SHAPE[3]}; median of '
        f'{args.runs} after the first call' + (' (tiny model)' if args.small else ''), flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    rows = []
    for graph in graphs:
      made = make('onnx', graph, args.cache_dir or tmp)
      print(f'# {graph}: ONNX file made in {made["seconds"]:.1f} s (or taken from the cache), '
            f'peak memory {made["memory"]:.1f} GiB', flush=True)
      path = made['path']
      rows += [('pytorch', 'float32', graph, ''), ('jax', 'float32', graph, ''),
               ('onnxruntime', 'float32', graph, path), ('openvino', 'float32', graph, path)]
      if bf16:
        rows.append(('openvino', 'bfloat16', graph, path))
      if args.yardstick:
        torch_graph = make('torch-graph', graph, pathlib.Path(tmp) / f'torch_{graph}.onnx')
        rows += [('openvino-torch-graph', d, graph, torch_graph['path'])
                 for d in ('float32', 'bfloat16')[:1 + bf16] if torch_graph]

    print('| runtime | graph | dtype | time | vs PyTorch fp32, same graph | first call | '
          'peak memory | file |')
    print('|---|---|---|---|---|---|---|---|')
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    baseline, names = {}, set()
    for side, dtype, graph, file in rows:
      command = [sys.executable, '-m', 'benchmarks.runtimes', '--one', side, dtype, graph,
                 str(file), '--runs', str(args.runs), '--threads', str(args.threads)]
      done = subprocess.run(command + small, env=env, cwd=ROOT, capture_output=True, text=True)
      line = [l for l in done.stdout.splitlines() if l.startswith('RESULT ')]
      if done.returncode or not line:
        print(f'| {side} | {graph} | {dtype} | failed: '
              f'{(done.stderr.strip().splitlines() or ["?"])[-1]} | | | | |', flush=True)
        continue
      r = json.loads(line[0][7:])
      names.add(r['name'])
      if side == 'pytorch':
        baseline[graph] = r['median']
      label = side.replace('-torch-graph', " (PyTorch's NCHW graph)")
      ratio = f'**{baseline[graph] / r["median"]:.2f}x**' if graph in baseline else '-'
      size = f'{os.path.getsize(file) / 2**20:.0f} MiB' if file else '-'
      print(f'| {label} | {graph} | {dtype} | {r["median"]:.2f} s | {ratio} | '
            f'{r["first"]:.2f} s | {r["memory"]:.2f} GiB | {size} |', flush=True)
    print('# ' + '; '.join(sorted(names)))


if __name__ == '__main__':
  main()
