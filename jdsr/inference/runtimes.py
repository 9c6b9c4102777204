"""The network in a CPU inference runtime: ONNX Runtime or OpenVINO.

``engine(model, 'openvino', tlsc=...)`` returns an ``Engine``: the model's
ONNX file (``jdsr.checkpoints.onnx``) loaded in the runtime, called like the
model on NHWC images (``engine(x)`` is the ×4 image). ``jdsr.inference.restore``
takes an engine wherever it takes a model (``Options.runtime`` makes one), so
tiles, videos, TLSC and the ×8 self-ensemble behave the same on every runtime.

* ``onnxruntime``: float32. Its CUDA provider is used where it is installed.
* ``openvino``: float32 or bfloat16 (``INFERENCE_PRECISION_HINT``). By default
  bfloat16 where the CPU computes it natively (AVX512_BF16 or AMX; OpenVINO's
  ``OPTIMIZATION_CAPABILITIES`` lists ``BF16``), float32 elsewhere.
  docs/performance.md has the speed and the fidelity of each.

The ONNX file is made once per weights, model config, TLSC setting and
converter, and cached in ``cache_dir`` (``default_cache_dir()``). Beside each
file, a JSON record holds its key and its SHA-256; a file whose record is
missing or does not match (a stale, truncated or altered file) is made again,
never trusted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import sys
from typing import Callable

import numpy as np

from jdsr import errors
from jdsr.inference import forward
from jdsr.io import files
from jdsr.nn import layers

RUNTIMES = ('jax', 'onnxruntime', 'openvino')
EXTRAS = {'onnxruntime': 'onnx', 'openvino': 'openvino'}  # the extra that installs each


class RuntimeMissing(ValueError):
  """The runtime (or the ONNX converter) is not installed; the message names the extra."""


def default_cache_dir() -> pathlib.Path:
  """``$JDSR_CACHE_DIR``, else ``$XDG_CACHE_HOME/jdsr``, else ``~/.cache/jdsr``."""
  if os.environ.get('JDSR_CACHE_DIR'):
    return pathlib.Path(os.environ['JDSR_CACHE_DIR'])
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return pathlib.Path(base) / 'jdsr'


def _import(runtime: str):
  try:
    if runtime == 'openvino' and 'openvino' not in sys.modules:
      with _without_openvino_telemetry():
        return __import__(runtime)
    return __import__(runtime)  # the module is named as the runtime
  except ImportError:
    raise RuntimeMissing(f"the {runtime} runtime is not installed: "
                         f"{errors.install_hint(EXTRAS[runtime])}") from None


@contextlib.contextmanager
def _without_openvino_telemetry():
  """OpenVINO's import without its usage telemetry.

  Importing ``openvino`` sends a usage event through ``openvino_telemetry``,
  which forks a process to send it: a fork of a process that runs JAX's threads
  (JAX warns that it may deadlock). While ``openvino_telemetry`` cannot be
  imported, OpenVINO uses its own no-op stand-in. Only the import is changed; a
  program that imported ``openvino`` before jdsr did keeps OpenVINO's own setting
  (its ``opt_in_out`` command turns it on or off).
  """
  saved = {name: module for name, module in sys.modules.items()
           if name == 'openvino_telemetry' or name.startswith('openvino_telemetry.')}
  sys.modules['openvino_telemetry'] = None  # import openvino_telemetry: ImportError
  try:
    yield
  finally:
    del sys.modules['openvino_telemetry']
    sys.modules.update(saved)


def bf16_supported() -> bool:
  """Whether OpenVINO's CPU plugin computes bfloat16 natively here."""
  ov = _import('openvino')
  return 'BF16' in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')


def resolve_dtype(runtime: str, dtype: str | None) -> str:
  """The precision a runtime computes in for ``dtype`` (None: the runtime's default)."""
  if runtime == 'onnxruntime':
    if dtype not in (None, 'float32'):
      raise ValueError(f'onnxruntime computes in float32, not {dtype}: use --runtime openvino '
                       'for bfloat16')
    return 'float32'
  if dtype is None:
    return 'bfloat16' if bf16_supported() else 'float32'
  if dtype == 'bfloat16' and not bf16_supported():
    raise ValueError('this CPU has no native bfloat16 (AVX512_BF16 or AMX): use --dtype float32')
  return dtype


@dataclasses.dataclass
class Engine:
  """A model in a runtime: ``engine(x)`` maps float32 (N, H, W, 3) to (N, 4H, 4W, 3).

  H and W must be multiples of 8 (``restore`` pads for you). ``config`` is
  the model config, ``tlsc`` the TLSC setting in its graph, ``onnx_path`` the
  file it runs.
  """
  runtime: str
  dtype: str
  tlsc: layers.TLSC | None
  config: dict
  onnx_path: pathlib.Path
  run_nchw: Callable[[np.ndarray], np.ndarray]

  def __call__(self, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] % 8 or x.shape[2] % 8:
      raise ValueError(f'expected (N, H, W, 3) images with H and W multiples of 8, got {x.shape}')
    out = self.run_nchw(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return out.transpose(0, 2, 3, 1)

  def self_ensemble(self, x: np.ndarray) -> np.ndarray:
    """The ×8 self-ensemble (as ``jdsr.inference.forward.self_ensemble``) of the ×4 image."""
    total = None
    for k in range(forward.N_TRANSFORMS):
      out = forward.undo_dihedral(self(forward.dihedral(x, k)), k)
      total = out if total is None else total + out
    return total / forward.N_TRANSFORMS


def cache_key(model, tlsc: layers.TLSC | None) -> str:
  """What the ONNX file of ``model`` with ``tlsc`` depends on, hashed: weights, config, TLSC, converter."""
  import jax
  from flax import nnx

  from jdsr.checkpoints import onnx as onnx_lib

  try:
    from importlib.metadata import version
    converter = version('jax2onnx')
  except Exception:  # not installed: engine() then fails to convert, or uses a cached file
    converter = 'unknown'
  digest = hashlib.sha256()
  digest.update(json.dumps(onnx_lib.metadata(model, tlsc), sort_keys=True).encode())
  digest.update(f'jax2onnx {converter}, jax {jax.__version__}'.encode())
  for path, var in nnx.to_flat_state(nnx.state(model)):
    value = np.ascontiguousarray(np.asarray(var.get_value()))
    digest.update(repr((path, value.dtype.str, value.shape)).encode())
    digest.update(value.data)
  return digest.hexdigest()


def _sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 24), b''):
      digest.update(block)
  return digest.hexdigest()


def cached_onnx(model, tlsc: layers.TLSC | None, cache_dir: str | os.PathLike | None = None,
                announce: Callable[[str], None] | None = None) -> pathlib.Path:
  """The ONNX file of ``model`` with ``tlsc``: from the cache if intact, else made and cached.

  ``announce(message)`` is told when the file is made (tens of seconds to
  minutes for the paper's model) and when a damaged one is replaced.
  """
  from jdsr.checkpoints import onnx as onnx_lib

  cache = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
  key = cache_key(model, tlsc)
  path, record = cache / 'onnx' / f'{key[:40]}.onnx', cache / 'onnx' / f'{key[:40]}.json'
  if path.exists() or record.exists():
    try:
      saved = json.loads(record.read_text())
      if saved.get('key') == key and saved.get('sha256') == _sha256(path):
        return path
    except (OSError, ValueError, AttributeError):
      pass
    if announce:
      announce(f'the cached ONNX file {path} is damaged or stale: making it again')
  if announce:
    announce(f'converting the model to ONNX (once per checkpoint and TLSC setting; '
             f'cached in {cache})')
  try:
    proto = onnx_lib.to_onnx(model, tlsc=tlsc)
  except ImportError as e:
    raise RuntimeMissing(str(e)) from None
  path.parent.mkdir(parents=True, exist_ok=True)
  files.atomic_write(path, proto.SerializeToString())
  files.atomic_write(record, json.dumps({'key': key, 'sha256': _sha256(path)}, indent=1) + '\n')
  return path


def load(path: str | os.PathLike, runtime: str, dtype: str = 'float32') -> Callable:
  """``run(x)``: the ONNX file at ``path`` in ``runtime``, on float32 NCHW arrays."""
  if runtime == 'onnxruntime':
    ort = _import('onnxruntime')
    available = ort.get_available_providers()
    providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider') if p in available]
    session = ort.InferenceSession(os.fspath(path), providers=providers)
    return lambda x: session.run(None, {'x': x})[0]
  if runtime == 'openvino':
    ov = _import('openvino')
    compiled = ov.Core().compile_model(os.fspath(path), 'CPU', {
        'INFERENCE_PRECISION_HINT': 'bf16' if dtype == 'bfloat16' else 'f32',
        'PERFORMANCE_HINT': 'LATENCY'})
    request = compiled.create_infer_request()
    return lambda x: np.array(request.infer({0: x})[0], copy=True)
  raise ValueError(f'runtime must be one of {RUNTIMES[1:]}, got {runtime!r}')


def engine(model, runtime: str, *, tlsc: layers.TLSC | None = layers.TLSC(),
           dtype: str | None = None, cache_dir: str | os.PathLike | None = None,
           announce: Callable[[str], None] | None = None) -> Engine:
  """``model`` (a ``JDSR``) in ``runtime`` ('onnxruntime' or 'openvino'), with ``tlsc`` in its graph.

  ``dtype``: None for the runtime's default (see the module docstring).
  Raises ``RuntimeMissing`` (one line naming the extra) if the runtime or the
  converter is not installed.
  """
  if runtime not in RUNTIMES[1:]:
    raise ValueError(f'runtime must be one of {RUNTIMES}, got {runtime!r}')
  _import(runtime)  # before converting: a missing runtime is said at once
  dtype = resolve_dtype(runtime, dtype)
  path = cached_onnx(model, tlsc, cache_dir, announce)
  return Engine(runtime=runtime, dtype=dtype, tlsc=tlsc, config=dict(model.config),
                onnx_path=path, run_nchw=load(path, runtime, dtype))


def stderr(message: str) -> None:
  """An ``announce`` that prints to standard error."""
  print(message, file=sys.stderr, flush=True)
