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
