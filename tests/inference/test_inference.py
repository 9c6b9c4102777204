"""Test-time helpers: the ×8 self-ensemble."""

import numpy as np

import jax
import jax.numpy as jnp

import jdsr
from jdsr.inference import forward
from tests import reference


def test_dihedral_transforms_are_the_eight_distinct_ones_and_invert():
  x = jnp.arange(2 * 3 * 5 * 1, dtype=jnp.float32).reshape(1, 3, 5, 2)
  seen = set()
  for k in range(forward.N_TRANSFORMS):
    y = forward.dihedral(x, k)
    seen.add(np.asarray(y).tobytes() + bytes(y.shape))
    np.testing.assert_array_equal(forward.undo_dihedral(y, k), x)
  assert len(seen) == 8


def test_golden_ensemble(golden_model):
  golden = reference.load('golden_ensemble.npz')
  _, sr = forward.self_ensemble(golden_model, reference.nchw_to_nhwc(golden['input']))
  np.testing.assert_allclose(reference.sr_sample(sr), reference.nchw_to_nhwc(golden['sr']),
                             rtol=0, atol=1e-4)


def test_ensemble_composes_with_tlsc():
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=0)
  # Square, so that all 8 transforms share one compiled program; test_golden_ensemble has
  # the non-square case.
  x = jax.random.uniform(jax.random.key(1), (1, 24, 24, 3))
  tlsc = jdsr.TLSC(base_size=(16, 16), train_size=(16, 16))  # local windows at 24x24
  images, sr = forward.self_ensemble(model, x, tlsc=tlsc)
  want = sum(forward.undo_dihedral(jdsr.apply(model, forward.dihedral(x, k), tlsc=tlsc)[1], k)
             for k in range(8)) / 8
  np.testing.assert_allclose(sr, want, atol=1e-6)
  assert [i.shape for i in images] == [x.shape] * 3
  plain = forward.self_ensemble(model, x)[1]
  assert np.abs(plain - sr).max() > 1e-6  # TLSC really is applied
