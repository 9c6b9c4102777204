"""3×3 'same' convolution by Winograd's minimal filtering F(4×4, 3×3).

A 3×3 convolution computes each 4×4 output tile from a 6×6 input tile. In the
Winograd domain that is 36 elementwise products per channel pair instead of
144 multiply-adds, so the channel contraction (a batch of 36 matrix products)
costs a quarter of the direct convolution; the input, kernel and output
transforms are linear maps, written as sums of scaled slices (one pass each).
On CPUs this is 1.5-2× XLA's direct convolution, and its gradient (JAX's,
through the transforms' hand-written transposes) many times XLA's
convolution gradient: see README's "Performance" for the measurements.

The result equals the direct convolution up to float32 rounding (the
transforms use the interpolation points 0, ±1, ±2, ∞; errors are a few units
in the last place of the inputs' scale). GPUs have their own fast
convolutions: keep ``impl='xla'`` there.

Reference: A. Lavin and S. Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

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
# Named scopes (in the compiled program's op names) for benchmarks/breakdown.py's breakdown.
TRANSFORM_SCOPE, GEMM_SCOPE = 'winograd_transform', 'winograd_gemm'
CONV1X1_SCOPE, DIRECT_SCOPE = 'conv1x1', 'direct_conv'


# Every transform is written as sums of scaled slices, which XLA fuses into
# one pass over the data, and each has its transpose written the same way
# (a custom VJP): as einsums the transforms were matrix products with
# transposes around them, and JAX's own transposes of the slices were chains
# of pads and adds; together they took most of a training step's time.


def _combine(mat: np.ndarray, parts: list[jax.Array], axis: int) -> jax.Array:
  """Row r of the result, stacked at ``axis``: sum_k mat[r, k] * parts[k] (zeros skipped)."""
  with jax.named_scope(TRANSFORM_SCOPE):
    return jnp.stack([sum(float(c) * parts[k] for k, c in enumerate(row) if c) for row in mat],
                     axis=axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _mix(x: jax.Array, matrix: str, axis: int) -> jax.Array:
  """``matrix`` (r, k) applied along ``axis`` of x (size k there, r after)."""
  mat = _MATRICES[matrix.removesuffix('^T')]
  mat = mat.T if matrix.endswith('^T') else mat
  return _combine(mat, [jax.lax.index_in_dim(x, k, axis, keepdims=False)
                        for k in range(mat.shape[1])], axis)


def _transposed(matrix: str) -> str:
  return matrix[:-2] if matrix.endswith('^T') else matrix + '^T'


_mix.defvjp(lambda x, matrix, axis: (_mix(x, matrix, axis), None),
            lambda matrix, axis, _, g: (_mix(g, _transposed(matrix), axis),))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _input_axis(x: jax.Array, axis: int, to: int) -> jax.Array:
  """B^T applied to the overlapping 6-wide windows at stride 4 along ``axis``: a new axis ``to``.

  ``x`` has 4 t + 2 entries along ``axis``; the result has t there, and the 6
  transformed window entries along ``to``. One pass: the windows are never
  materialised.
  """
  tiles = (x.shape[axis] - 2) // TILE
  return _combine(_BT, [jax.lax.slice_in_dim(x, k, k + TILE * (tiles - 1) + 1, stride=TILE,
                                             axis=axis) for k in range(_IN)], to)


@jax.named_scope(TRANSFORM_SCOPE)
def _overlap_add(g: jax.Array, axis: int) -> jax.Array:
  """Each 6-wide window's entries (at ``axis``, the tiles after it) added back where they came from."""
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


_input_axis.defvjp(
    lambda x, axis, to: (_input_axis(x, axis, to), None),
    lambda axis, to, _, g: (_overlap_add(jnp.moveaxis(_mix(g, 'BT^T', to), to, axis), axis),))


def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """'Same' 3×3 cross-correlation, NHWC input, HWIO kernel, no bias."""
  n, h, w, c = x.shape
  th, tw = -(-h // TILE), -(-w // TILE)
  x = jnp.pad(x, ((0, 0), (1, TILE * th + 1 - h), (1, TILE * tw + 1 - w), (0, 0)))
  v = _input_axis(_input_axis(x, 1, 0), 3, 1)  # (6, 6, n, th, tw, c)
  u = _mix(_mix(kernel, 'G', 0), 'G', 1)  # (6, 6, c, o)
  with jax.named_scope(GEMM_SCOPE):
    m = jnp.einsum('abnhwc,abco->abnhwo', v, u)
  return _output_transform(m)[:, :h, :w]


def _output_transform(m: jax.Array) -> jax.Array:
  """A^T m A for every tile, (6, 6, n, th, tw, o) -> (n, 4 th, 4 tw, o)."""
  _, _, n, th, tw, o = m.shape
  y = _mix(_mix(m, 'AT', 0), 'AT', 1)  # (4, 4, n, th, tw, o)
  return y.transpose(2, 3, 0, 4, 1, 5).reshape(n, TILE * th, TILE * tw, o)


CONV_OUTPUT = 'conv3x3'  # the checkpoint name of every 3×3 convolution's output (see jdsr.nn.model)
# 3×3 convolutions from or to fewer channels (the image convolutions) stay direct: their
# transforms would cost more memory and time than they save.
MIN_CHANNELS = 16


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
  """A drop-in for `jax.lax.conv_general_dilated` (as `nnx.Conv` calls it).

  For a plain stride-1 'SAME' NHWC/HWIO convolution: a 3×3 one takes the
  Winograd path, or, with fewer than ``MIN_CHANNELS`` input or output
  channels (the image convolutions), XLA's convolution with a faster kernel
  gradient (``thin_conv3x3``); a 1×1 one is a matrix product (XLA's CPU
  convolution is slow to differentiate: its kernel gradient runs at a
  fraction of a GEMM's speed). Every other case goes to XLA unchanged. 3×3
  outputs are named ``CONV_OUTPUT`` for rematerialisation policies.
  """
  plain = (rhs.ndim == 4 and rhs.shape[:2] in ((3, 3), (1, 1)) and tuple(window_strides) == (1, 1)
           and padding == 'SAME' and all(d in (None, 1) for d in (lhs_dilation or [1]))
           and all(d in (None, 1) for d in (rhs_dilation or [1])) and feature_group_count == 1
           and _is_nhwc(dimension_numbers) and kwargs.get('preferred_element_type') is None
           and kwargs.get('out_sharding') is None)
  if plain and rhs.shape[:2] == (1, 1):
    with jax.named_scope(CONV1X1_SCOPE):
      return jnp.einsum('nhwc,co->nhwo', lhs, rhs[0, 0], precision=precision)
  if plain:
    wide = min(rhs.shape[2:]) >= MIN_CHANNELS
    return checkpoint_name((conv3x3 if wide else thin_conv3x3)(lhs, rhs), CONV_OUTPUT)
  return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                      rhs_dilation, dimension_numbers, feature_group_count,
                                      precision=precision, **kwargs)


def xla_conv_general_dilated(lhs, rhs, *args, **kwargs):
  """`jax.lax.conv_general_dilated` with 3×3 outputs named ``CONV_OUTPUT``."""
  pointwise = rhs.shape[:2] == (1, 1)
  with jax.named_scope(CONV1X1_SCOPE if pointwise else DIRECT_SCOPE):
    y = jax.lax.conv_general_dilated(lhs, rhs, *args, **kwargs)
  return checkpoint_name(y, CONV_OUTPUT) if rhs.shape[:2] == (3, 3) else y


def _direct(x: jax.Array, kernel: jax.Array) -> jax.Array:
  with jax.named_scope(DIRECT_SCOPE):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@jax.custom_vjp
def thin_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """XLA's 'same' 3×3 convolution, for few input or output channels, with a fast kernel gradient.

  XLA's CPU backend computes this kernel gradient as a convolution whose
  window is the whole image (0.75 s of a phase-3 step for the two image
  convolutions at 256×256). Here it is one matrix product: the thin side
  (image or gradient, 3 channels) shifted to the 9 taps, against the other.
  """
  return _direct(x, kernel)


def _thin_conv3x3_bwd(res, g):
  x, kernel = res
  grad_x = _direct(g, jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  with jax.named_scope(DIRECT_SCOPE):
    return grad_x, _thin_kernel_grad(x, g).reshape(kernel.shape)


def _thin_kernel_grad(x: jax.Array, g: jax.Array) -> jax.Array:
  """(9, c, o): the kernel gradient, taps first, as one matrix product."""
  _, h, w, c = x.shape
  o = g.shape[-1]
  # dL/dk[i, j, c, o] = sum_{y, x} xpad[y + i, x + j, c] g[y, x, o]
  #                   = sum_{y, x} x[y, x, c] gpad[y - i + 2, x - j + 2, o] (0-based, pad 1).
  if c <= o:
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    taps = jnp.stack([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=3)
    grad_k = jnp.einsum('nhwtc,nhwo->tco', taps, g)
  else:
    gp = jnp.pad(g, ((0, 0), (1, 1), (1, 1), (0, 0)))
    taps = jnp.stack([gp[:, 2 - i:2 - i + h, 2 - j:2 - j + w] for i in range(3) for j in range(3)],
                     axis=3)
    grad_k = jnp.einsum('nhwc,nhwto->tco', x, taps)
  return grad_k


thin_conv3x3.defvjp(lambda x, kernel: (thin_conv3x3(x, kernel), (x, kernel)), _thin_conv3x3_bwd)


def _is_nhwc(dn) -> bool:
  return (isinstance(dn, jax.lax.ConvDimensionNumbers) and dn.lhs_spec == (0, 3, 1, 2)
          and dn.rhs_spec == (3, 2, 0, 1) and dn.out_spec == (0, 3, 1, 2))
