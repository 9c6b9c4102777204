"""What the tests share: paths, running the project's commands, configs, files they make.

Fixtures live in ``tests/conftest.py``; everything else more than one test file uses is here.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import time
import zlib
from typing import Callable

import ml_collections
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = ROOT / 'samples'
SHARP = SAMPLES / 'sharp'
BLURRY = SAMPLES / 'blurry'
# train.py's flags for the tiny model on the sample photos (train and validation).
PHOTOS = ['--config.data.source=photos', f'--config.data.photos_dir={SHARP}',
          f'--config.data.val_photos_dir={SHARP}']


# -- running the project's commands ---------------------------------------------------------


def run(*args, cwd=ROOT, timeout: float = 600, env: dict | None = None
        ) -> subprocess.CompletedProcess:
  """``python ARGS`` with this interpreter (the checkout's jdsr from any folder); its result."""
  env = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True,
                        text=True, timeout=timeout, env=env)


def python(code: str, *, env: dict | None = None, timeout: float = 600) -> str:
  """Runs ``code`` with this interpreter in the repository root; its stdout. Fails if it fails."""
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def train_py(*args) -> list[str]:
  """The command line of ``train.py --config configs/tiny.py ARGS``."""
  return [sys.executable, 'train.py', '--config', 'configs/tiny.py', *map(str, args)]


def start_train_py(args, log: pathlib.Path) -> subprocess.Popen:
  """``train_py(*args)`` started in the repository root, its stderr to ``log``."""
  return subprocess.Popen(train_py(*args), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=log.open('w'), text=True)


def wait_for(proc: subprocess.Popen, log: pathlib.Path, text: str, timeout: float = 300) -> None:
  """Until ``text`` is in ``log``; fails if the process ends first or time runs out."""
  end = time.monotonic() + timeout
  while text not in log.read_text(errors='replace'):
    assert proc.poll() is None, log.read_text()[-3000:]
    assert time.monotonic() < end, f'no {text!r} in time:\n' + log.read_text()[-3000:]
    time.sleep(0.2)


def one_line(stderr: str) -> str:
  """The last line of a command's stderr, which must hold no traceback."""
  lines = [line for line in stderr.strip().splitlines() if line.strip()]
  assert 'Traceback' not in stderr and 'Event loop is closed' not in stderr, stderr[-3000:]
  return lines[-1]


def one_error_line(result: subprocess.CompletedProcess, *expected: str) -> str:
  """The process failed with one error line containing ``expected``, and no traceback."""
  assert result.returncode != 0, result.stdout[-2000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if 'error:' in line]
  assert len(errors) == 1, result.stderr[-3000:]
  for text in expected:
    assert text in errors[0], errors[0]
  return errors[0]


# -- configs --------------------------------------------------------------------------------


def photos_config(photos_dir, val_photos_dir, phase: str = 'deblur',
                  **overrides) -> ml_collections.ConfigDict:
  """configs/tiny.py training ``phase`` on photos; ``overrides``: fields, or dicts merged into sub-configs."""
  from configs import tiny

  config = tiny.get_config()
  config.phase = phase
  config.data.source = 'photos'
  config.data.photos_dir, config.data.val_photos_dir = str(photos_dir), str(val_photos_dir)
  for key, value in overrides.items():
    if isinstance(value, dict):
      config[key].update(value)
    else:
      config[key] = value
  return config


# -- made once per session ------------------------------------------------------------------


def once(tmp_path_factory, name: str, build: Callable[[pathlib.Path], None]) -> pathlib.Path:
  """The folder ``build(folder)`` fills, made once per test session, whichever worker asks first.

  With pytest-xdist each worker has its own session fixtures; the folder is kept beside
  the workers' temporary folders, under a file lock, so the others wait and reuse it.
  """
  root = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    root = root.parent
  folder, done = root / f'once-{name}', root / f'once-{name}.done'
  with open(root / f'once-{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.exists():
      shutil.rmtree(folder, ignore_errors=True)
      folder.mkdir()
      build(folder)
      done.touch()
  return folder


def copy_run(workdir: pathlib.Path, to: pathlib.Path) -> pathlib.Path:
  """A copy of a training workdir, without its lock, for a test to change."""
  shutil.copytree(workdir, to, symlinks=True)
  for lock in to.glob('.lock*'):
    lock.unlink()
  return to


# -- files the tests make -------------------------------------------------------------------


def files(folder: pathlib.Path) -> dict[str, bytes]:
  """Every file under ``folder`` and its bytes (to compare before and after)."""
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
          if p.is_file()}


def images(folder: pathlib.Path, names: list[str], size=(12, 20)) -> pathlib.Path:
  """Random RGB images named ``names`` in ``folder`` (made if need be)."""
  from jdsr.io import imagefile

  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for name in names:
    imagefile.write_image(folder / name, rng.random((*size, 3)).astype(np.float32))
  return folder


def eval_py(checkpoint, inputs, out, *flags) -> subprocess.CompletedProcess:
  """eval.py with ``checkpoint`` on the folder ``inputs``, into ``out``, without figures."""
  return run('eval.py', '--config', 'configs/eval_default.py', '--checkpoint', checkpoint,
             '--input_dir', inputs, '--output_dir', out, '--save_figures=false', *flags)


def write_lock(folder: pathlib.Path, pid, host: str, age: float = 0) -> pathlib.Path:
  """Another run's ``.lock`` in ``folder``, last refreshed ``age`` seconds ago."""
  from jdsr.io import locks

  path = folder / locks.NAME
  path.write_text(json.dumps({'pid': pid, 'host': host, 'token': 'theirs', 'started': 'then'}))
  os.utime(path, (time.time() - age, time.time() - age))
  return path


def png_bomb(path: pathlib.Path, width: int = 6000, height: int = 6000) -> pathlib.Path:
  """A small PNG whose header declares a huge image (one zlib stream of zero rows)."""
  raw = zlib.compress(b'\0' * (1 + width) * height, 9)

  def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height,
                                                                     8, 0, 0, 0, 0))
                   + chunk(b'IDAT', raw) + chunk(b'IEND', b''))
  return path


def frames(n: int, w: int, h: int) -> list[np.ndarray]:
  """Smooth moving gradients and a square (what video codecs are made for), uint8 RGB."""
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  out = []
  for i in range(n):
    rgb = np.stack([x / w, y / h, 0.5 + 0.4 * np.sin((x + 3 * i) / 5)], axis=-1)
    rgb[h // 4:h // 2, (w // 4 + i) % w:(w // 2 + i) % w] = (0.9, 0.2, 0.1)
    out.append((rgb * 255).round().astype(np.uint8))
  return out


def write_clip(path: pathlib.Path, frames: list[np.ndarray], *, codec: str, pix_fmt: str,
               fps: int, audio: bool = False, options=None, container_options=None) -> None:
  """A video of ``frames`` (uint8 RGB) written with PyAV; ``audio``: a 440 Hz tone beside it."""
  import av

  h, w = frames[0].shape[:2]
  with av.open(str(path), 'w', options=container_options or {}) as out:
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
    stream.options = options or {}
    if audio:
      sound = out.add_stream('aac', rate=16000)
      sound.layout = 'mono'
    for i, rgb in enumerate(frames):
      frame = av.VideoFrame.from_ndarray(rgb, format='rgb24')
      frame.pts = i
      out.mux(stream.encode(frame))
      if audio:
        t = (np.arange(16000 // fps) + i * (16000 // fps)) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        chunk = av.AudioFrame.from_ndarray(samples, format='fltp', layout='mono')
        chunk.sample_rate, chunk.pts = 16000, i * (16000 // fps)
        out.mux(sound.encode(chunk))
    out.mux(stream.encode(None))
    if audio:
      out.mux(sound.encode(None))


# -- parameters -----------------------------------------------------------------------------


def flat(tree) -> dict[str, np.ndarray]:
  """A tree's arrays by their path (``"['conv']['kernel'].value"``)."""
  import jax
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def params_of(model) -> dict[str, np.ndarray]:
  """A model's parameters by their path."""
  from flax import nnx
  return flat(nnx.state(model, nnx.Param))


def changed(before: dict, after: dict) -> set[str]:
  """The paths whose arrays differ (the two must have the same paths)."""
  assert before.keys() == after.keys()
  return {k for k in before if not np.array_equal(before[k], after[k])}


def is_sr(key: str) -> bool:
  """Whether a parameter path is the transformation and super-resolution module's."""
  return key.startswith("['SRNet_")


def assert_trained(changed_keys: set[str], trained: set[str]) -> None:
  """Only ``trained`` parameters changed, and nearly all of them.

  Not all: in the tiny model a CA layer's two-unit ReLU can be dead for a
  whole batch, and then its two convs get no gradient in a few steps.
  """
  assert changed_keys <= trained, sorted(changed_keys - trained)
  assert len(changed_keys) >= 0.9 * len(trained), sorted(trained - changed_keys)


def scalar(value) -> float:
  """A TensorBoard event's scalar value (tensorboardX writes a simple value or a tensor)."""
  if value.HasField('tensor'):
    tensor = value.tensor
    if tensor.tensor_content:
      return float(np.frombuffer(tensor.tensor_content, np.float32)[0])
    return float(tensor.float_val[0])
  return float(value.simple_value)
