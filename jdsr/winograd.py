"""3×3 'same' convolution by Winograd's minimal filtering F(4×4, 3×3).

A 3×3 convolution computes each 4×4 output tile from a 6×6 input tile. In the
Winograd domain that is 36 elementwise products per channel pair instead of
144 multiply-adds, so the channel contraction (a batch of 36 matrix products)
costs a quarter of the direct convolution; the input, kernel and output
transforms are cheap linear maps. XLA's CPU convolution runs at the speed of
its matrix product, so this is about twice as fast end to end there.

The result equals the direct convolution up to float32 rounding (the
transforms use the interpolation points 0, ±1, ±2, ∞; errors are a few units
in the last place of the inputs' scale). It is differentiable like any JAX
function, so training uses it too: with the blocks rematerialised, JAX's
derived gradient measured faster here (19.2 s against 22.2 s per phase-3
step) than a hand-written one (a Winograd convolution for the input, nine
GEMMs for the kernel). GPUs have their own fast convolutions:
keep ``impl='xla'`` there.

Reference: A. Lavin and S. Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# Interpolation points 0, 1, -1, 2, -2 and infinity.
_BT = np.array([
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
], np.float32)
_G = np.array([
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
], np.float32)
_AT = np.array([
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
], np.float32)

TILE = 4  # output tile size
_IN = TILE + 2  # input tile size
_MATRICES = {'BT': _BT, 'G': _G, 'AT': _AT}


# Every transform is written as sums of scaled slices, which XLA fuses into
# one pass over the data, and each has its transpose written the same way
# (a custom VJP): as einsums the transforms were matrix products with
# transposes around them, and JAX's own transposes of the slices were chains
# of pads and adds; together they took most of a training step's time.


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _mix(x: jax.Array, matrix: str, axis: int) -> jax.Array:
  """``matrix`` (r, k) applied along ``axis`` of x (size k there, r after)."""
  mat = _MATRICES[matrix.removesuffix('^T')]
  mat = mat.T if matrix.endswith('^T') else mat
  parts = [jax.lax.index_in_dim(x, k, axis, keepdims=False) for k in range(mat.shape[1])]
  return jnp.stack([sum(float(c) * parts[k] for k, c in enumerate(row) if c) for row in mat],
                   axis=axis)


def _transposed(matrix: str) -> str:
  return matrix[:-2] if matrix.endswith('^T') else matrix + '^T'


_mix.defvjp(lambda x, matrix, axis: (_mix(x, matrix, axis), None),
            lambda matrix, axis, _, g: (_mix(g, _transposed(matrix), axis),))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _windows(x: jax.Array, axis: int) -> jax.Array:
  """The overlapping 6-wide windows at stride 4 along ``axis``: a new axis of 6 before it.

  ``x`` has 4 t + 2 entries along ``axis``; the result has t there.
  """
  tiles = (x.shape[axis] - 2) // TILE
  return jnp.stack([jax.lax.slice_in_dim(x, k, k + TILE * (tiles - 1) + 1, stride=TILE, axis=axis)
                    for k in range(_IN)], axis=axis)


def _overlap_add(g: jax.Array, axis: int) -> jax.Array:
  """The transpose of ``_windows``: each window's 6 entries added back where they came from."""
  own = jax.lax.slice_in_dim(g, 0, TILE, axis=axis)  # entries 4t .. 4t+3
  extra = jax.lax.slice_in_dim(g, TILE, _IN, axis=axis)  # entries 4t+4, 4t+5
  pad = [(0, 0, 0)] * g.ndim
  pad[axis] = (0, TILE - (_IN - TILE), 0)
  extra = jax.lax.pad(extra, jnp.zeros((), g.dtype), pad)

  def rows(y):  # (..., 4, t, ...) -> (..., 4 t, ...), window-major
    y = jnp.moveaxis(y, axis, axis + 1)
    return y.reshape(y.shape[:axis] + (-1,) + y.shape[axis + 2:])

  own, extra = rows(own), rows(extra)
  pad = [(0, 0)] * own.ndim
  pad[axis] = (0, 2)
  own = jnp.pad(own, pad)
  pad[axis] = (TILE, 0)
  extra = jax.lax.slice_in_dim(jnp.pad(extra, pad), 0, own.shape[axis], axis=axis)
  return own + extra


_windows.defvjp(lambda x, axis: (_windows(x, axis), None),
                lambda axis, _, g: (_overlap_add(g, axis),))


def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """'Same' 3×3 cross-correlation, NHWC input, HWIO kernel, no bias."""
  n, h, w, c = x.shape
  th, tw = -(-h // TILE), -(-w // TILE)
  x = jnp.pad(x, ((0, 0), (1, TILE * th + 1 - h), (1, TILE * tw + 1 - w), (0, 0)))
  v = _mix(_windows(x, 1), 'BT', 1)  # (n, 6, th, W, c)
  v = _mix(_windows(v, 3), 'BT', 3)  # (n, 6, th, 6, tw, c)
  v = v.transpose(1, 3, 0, 2, 4, 5)  # (6, 6, n, th, tw, c)
  u = _mix(_mix(kernel, 'G', 0), 'G', 1)  # (6, 6, c, o)
  m = jnp.einsum('abnhwc,abco->abnhwo', v, u)
  return _output_transform(m)[:, :h, :w]


def _output_transform(m: jax.Array) -> jax.Array:
  """A^T m A for every tile, (6, 6, n, th, tw, o) -> (n, 4 th, 4 tw, o)."""
  _, _, n, th, tw, o = m.shape
  y = _mix(_mix(m, 'AT', 0), 'AT', 1)  # (4, 4, n, th, tw, o)
  return y.transpose(2, 3, 0, 4, 1, 5).reshape(n, TILE * th, TILE * tw, o)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
  """A drop-in for `jax.lax.conv_general_dilated` (as `nnx.Conv` calls it).

  Takes the Winograd path for a plain 3×3, stride-1, 'SAME', NHWC/HWIO
  convolution, computes a plain 1×1 one as a matrix product (XLA's CPU
  convolution is slow to differentiate: its kernel gradient runs at a fraction
  of a GEMM's speed), and hands every other case to XLA unchanged.
  """
  plain = (rhs.ndim == 4 and rhs.shape[:2] in ((3, 3), (1, 1)) and tuple(window_strides) == (1, 1)
           and padding == 'SAME' and all(d in (None, 1) for d in (lhs_dilation or [1]))
           and all(d in (None, 1) for d in (rhs_dilation or [1])) and feature_group_count == 1
           and _is_nhwc(dimension_numbers) and kwargs.get('preferred_element_type') is None
           and kwargs.get('out_sharding') is None)
  if plain and rhs.shape[:2] == (1, 1):
    return jnp.einsum('nhwc,co->nhwo', lhs, rhs[0, 0], precision=precision)
  if plain:
    return conv3x3(lhs, rhs)
  return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                      rhs_dilation, dimension_numbers, feature_group_count,
                                      precision=precision, **kwargs)


def _is_nhwc(dn) -> bool:
  return (isinstance(dn, jax.lax.ConvDimensionNumbers) and dn.lhs_spec == (0, 3, 1, 2)
          and dn.rhs_spec == (3, 2, 0, 1) and dn.out_spec == (0, 3, 1, 2))
