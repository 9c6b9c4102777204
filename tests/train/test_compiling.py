"""Compiling a step before its first run."""

import jax
import jax.numpy as jnp
import numpy as np

from jdsr.train import compiling


class _CountingJit:
  def __init__(self, jitted):
    self.jitted, self.lowered = jitted, 0

  def lower(self, *args):
    self.lowered += 1
    return self.jitted.lower(*args)


def test_compile_on_first_call_compiles_once_and_computes_the_same():
  jitted = _CountingJit(jax.jit(lambda x, y: x * 2 + y))
  step = compiling.compile_on_first_call(jitted)
  x, y = jnp.arange(4.0), jnp.ones(4)
  np.testing.assert_array_equal(step(x, y), x * 2 + y)
  np.testing.assert_array_equal(step(y, x), y * 2 + x)
  assert jitted.lowered == 1


def test_release_free_memory_says_whether_it_could():
  assert isinstance(compiling.release_free_memory(), bool)


def test_compile_on_first_call_compiles_again_for_a_new_shape_only():
  jitted = _CountingJit(jax.jit(lambda x: x + 1))
  step = compiling.compile_on_first_call(jitted)
  np.testing.assert_array_equal(step(jnp.zeros(3)), np.ones(3))
  np.testing.assert_array_equal(step(jnp.zeros(5)), np.ones(5))
  np.testing.assert_array_equal(step(jnp.ones(3)), np.full(3, 2.0))
  assert jitted.lowered == 2
