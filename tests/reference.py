"""The official implementation's numbers in tests/data (see its README), and the golden weights."""

from __future__ import annotations

import pathlib

import numpy as np

DATA = pathlib.Path(__file__).parent / 'data'
SEED, PRELU = 20211, 0.17
SR_STRIDE = 3  # the stored `sr` outputs keep every 3rd row and column


def key_table() -> list[tuple[str, tuple[int, ...]]]:
  """(key, shape) of every tensor of the official checkpoint, in file order."""
  rows = (DATA / 'state_dict_keys.tsv').read_text().splitlines()[1:]
  table = []
  for row in rows:
    _, key, shape = row.split('\t')
    table.append((key, tuple(int(s) for s in shape.split('x'))))
  return table


def golden_state_dict() -> dict[str, np.ndarray]:
  """The synthetic weights of the goldens, rebuilt with the recipe in tests/data/README.md."""
  rng = np.random.default_rng(SEED)
  out = {}
  for key, shape in key_table():
    if len(shape) == 4:
      fan_in = shape[1] * shape[2] * shape[3]
      out[key] = (rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(fan_in)).astype(np.float32)
    else:
      out[key] = np.full(shape, PRELU, np.float32)
  return out


def load(name: str) -> dict[str, np.ndarray]:
  with np.load(DATA / name) as f:
    return dict(f)


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def sr_sample(sr: np.ndarray) -> np.ndarray:
  """An NHWC ×4 output at the rows and columns the stored `sr` keeps."""
  return np.asarray(sr)[:, ::SR_STRIDE, ::SR_STRIDE]
