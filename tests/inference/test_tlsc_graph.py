"""TLSC in the ONNX graph, at every kind of size: the runtimes compute what ``jdsr.apply`` does.

The graph's local means (``layers._box_mean_banded``: band-matrix products, their
window clamped at run time) must give what the JAX program's static ones give, for
each case the window meets. On a model smaller than the tiny one (one block of each
kind: every kind of layer, and each program compiles in seconds), with TLSC's windows at each level
96 / 2^level: clamped to the feature where the input side is under 96, not where it
is over; the whole feature (the global pool) at 96 and under. Its weights are not
the initial ones and its PReLU slope is not 0.25, so a graph that lost either shows.
The full tier adds the paper's model with the golden weights, against the official TLSC
network's numbers.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

import jdsr
from jdsr.inference import runtimes
from tests import reference

# (batch, H, W): tall and wide; H/8 or W/8 odd; clamped, not clamped, exactly the window.
SIZES = [
    (1, 40, 40),     # both clamped; 5 and 5 eighths
    (1, 200, 48),    # tall: H not clamped (25 eighths), W clamped
    (1, 48, 200),    # wide
    (3, 64, 64),     # the training size: TLSC is the global pool; batch 3
    (1, 96, 96),     # the window is the feature: the global pool
    (1, 104, 136),   # neither clamped; 13 and 17 eighths
    (3, 120, 72),    # batch 3; H not clamped, W clamped (9 eighths)
    (1, 16, 232),    # very wide, H at its smallest here
    (1, 232, 16),    # very tall
    (1, 88, 104),    # H just under the window, W just over
    (3, 112, 144),   # the TLSC goldens' size, batch 3
    (1, 176, 320),   # the benchmarks' frame
]


CONFIG = jdsr.tiny_model_config()
CONFIG.update(num_unet_cab=1, num_cab=1, n_resgroups=1, n_resblocks=1)


@pytest.fixture(scope='module')
def model() -> jdsr.JDSR:
  model = jdsr.build_model(CONFIG, 3)
  state = nnx.state(model, nnx.Param)
  rng = np.random.default_rng(0)
  state = jax.tree.map(lambda p: p * rng.uniform(0.5, 1.5, p.shape).astype(p.dtype), state)
  nnx.update(model, state)
  model.act.negative_slope[...] = np.float32(0.6)
  return model


@pytest.fixture(scope='module')
def onnx_file(model, onnx_cache):
  return runtimes.cached_onnx(model, jdsr.TLSC(), onnx_cache)


@pytest.mark.parametrize('size', SIZES, ids=lambda s: 'x'.join(map(str, s)))
def test_the_tlsc_graph_computes_what_jdsr_computes(model, onnx_file, size):
  n, h, w = size
  x = np.random.default_rng(h * w + n).random((n, h, w, 3), np.float32)
  expected = np.asarray(jdsr.apply(model, x, tlsc=jdsr.TLSC())[1])
  x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
  for runtime in ('onnxruntime', 'openvino'):
    got = runtimes.load(onnx_file, runtime, 'float32')(x_nchw).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0, err_msg=runtime)


def test_the_sweep_sees_the_weights_and_the_slope(model):
  """The model the sweep runs is not the initial one: its PReLU and weights are changed."""
  initial = jdsr.build_model(CONFIG, 3)
  assert float(model.act.negative_slope[...]) == pytest.approx(0.6)
  x = np.random.default_rng(1).random((1, 40, 40, 3), np.float32)
  ours, theirs = (np.asarray(jdsr.apply(m, x, tlsc=jdsr.TLSC())[1]) for m in (model, initial))
  assert np.abs(ours - theirs).max() > 1e-2


@pytest.mark.slow
def test_the_paper_models_tlsc_graph_is_the_official_tlsc_network(golden_model, onnx_cache):
  """The paper's model with the golden weights, with TLSC, through its ONNX file: the official
  TLSC network's output (tests/data/golden_tlsc.npz), and jdsr.apply's to 2e-5."""
  golden = reference.load('golden_tlsc.npz')
  path = runtimes.cached_onnx(golden_model, jdsr.TLSC(), onnx_cache)
  expected = np.asarray(jdsr.apply(golden_model, reference.nchw_to_nhwc(golden['input']),
                                   tlsc=jdsr.TLSC())[1]).transpose(0, 3, 1, 2)
  for runtime in ('onnxruntime', 'openvino'):
    got = runtimes.load(path, runtime, 'float32')(golden['input'])
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0, err_msg=runtime)
    np.testing.assert_allclose(got[..., ::reference.SR_STRIDE, ::reference.SR_STRIDE],
                               golden['sr'], atol=1e-4, rtol=0, err_msg=runtime)
