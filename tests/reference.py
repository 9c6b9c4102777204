"""The reference numbers in ../shared/reference, and the golden weights' recipe."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

SHARED = pathlib.Path(os.environ.get('JDSR_SHARED', pathlib.Path(__file__).parents[2] / 'shared'))
REFERENCE = SHARED / 'reference'
SEED, PRELU = 20211, 0.17


def require(path: pathlib.Path) -> pathlib.Path:
  if not path.exists():
    pytest.fail(f'reference data missing: {path} (set JDSR_SHARED to the shared/ folder)')
  return path


def key_table() -> list[tuple[str, tuple[int, ...]]]:
  """(key, shape) of every tensor of the official checkpoint, in file order."""
  rows = require(REFERENCE / 'state_dict_keys.tsv').read_text().splitlines()[1:]
  table = []
  for row in rows:
    _, key, shape = row.split('\t')
    table.append((key, tuple(int(s) for s in shape.split('x'))))
  return table


def golden_state_dict() -> dict[str, np.ndarray]:
  """The synthetic weights of the goldens, rebuilt with the README's recipe."""
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
  with np.load(require(REFERENCE / name)) as f:
    return dict(f)


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
