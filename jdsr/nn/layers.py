"""Building blocks shared by the deblurring and super-resolution modules.

Everything is NHWC, or NCHW inside ``jdsr.nn.layout.channels_first()``. Each function here reproduces one PyTorch operator of the
official implementation exactly (see docs/network.md, "Operators"):

* ``conv``: a bias-free ``nnx.Conv`` with 'same' zero padding and PyTorch's
  default initialisation.
* ``downsample2`` / ``upsample2``: ``nn.Upsample(scale_factor=0.5 | 2,
  mode='bilinear', align_corners=False)``.
* ``pixel_shuffle``: ``nn.PixelShuffle`` in PyTorch's channel order.
* ``global_pool`` / ``TLSC``: ``nn.AdaptiveAvgPool2d(1)`` and its test-time
  local-statistics replacement.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdsr.nn import layout, winograd

Array = jax.Array
Pool = Callable[[Array], Array]
Act = Callable[[Array], Array]

# PyTorch's default conv init (kaiming_uniform with a=sqrt(5)) is
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_default_init = nnx.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')

CONV_IMPLS = ('auto', 'xla', 'winograd')


class Conv(nnx.Conv):
  """``nnx.Conv``, which inside ``layout.channels_first()`` takes and gives NCHW arrays.

  There it is XLA's convolution with ('NCHW', 'HWIO', 'NCHW') dimension
  numbers, whatever ``conv_impl``: one ONNX ``Conv`` once converted.
  """

  def __call__(self, x: Array) -> Array:
    if not layout.is_channels_first():
      return super().__call__(x)
    pad = self.kernel_size[0] // 2
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), self.kernel[...].astype(self.dtype), (1, 1), [(pad, pad)] * 2,
        dimension_numbers=layout.CONV_DIMENSION_NUMBERS,
        preferred_element_type=self.preferred_element_type)
    return y.astype(jnp.float32)


def conv(in_features: int, out_features: int, kernel_size: int, *, impl: str = 'xla',
         dtype: str = 'float32', rngs: nnx.Rngs) -> Conv:
  """A bias-free k×k convolution with 'same' zero padding (PyTorch's `conv`).

  ``dtype``: the dtype of the convolution's operands ('float32' or
  'bfloat16'); the kernel is stored in float32, and the products are summed
  and returned in float32. ``impl='auto'`` is 'winograd' on CPUs in
  float32, and 'xla' elsewhere (Winograd's transforms would lose too much in
  bfloat16, so 'winograd' is float32 only).
  ``impl='winograd'`` computes 3×3 convolutions with Winograd F(4×4, 3×3)
  (see ``jdsr.nn.winograd``), and 1×1 ones as matrix products: the same numbers
  to float32 rounding, faster on CPUs. 3×3 convolutions from or to fewer
  than ``winograd.MIN_CHANNELS`` channels (the image convolutions) use XLA's
  convolution, with a kernel gradient computed as one matrix product.
  Every 3×3 output is named ``winograd.CONV_OUTPUT``, which the training
  step's rematerialisation keeps (``jdsr.nn.model.run_stacked``).
  """
  if impl not in CONV_IMPLS:
    raise ValueError(f'conv impl must be one of {CONV_IMPLS}, got {impl!r}')
  if impl == 'auto':
    impl = 'winograd' if jax.default_backend() == 'cpu' and dtype == 'float32' else 'xla'
  if impl == 'winograd' and dtype != 'float32':
    raise ValueError(f"conv_impl 'winograd' computes in float32, not {dtype}: use 'auto' or 'xla'")
  kwargs = {'conv_general_dilated': (winograd.conv_general_dilated if impl == 'winograd'
                                     else winograd.xla_conv_general_dilated)}
  if dtype != 'float32':  # products summed and returned in float32 (the Winograd path takes none)
    kwargs['preferred_element_type'] = jnp.float32
  return Conv(in_features, out_features, (kernel_size, kernel_size), padding='SAME', use_bias=False,
                  kernel_init=torch_default_init, dtype=jnp.dtype(dtype), param_dtype=jnp.float32,
                  rngs=rngs, **kwargs)


def prelu(negative_slope: Array) -> Act:
  """The shared PReLU as a pure function of its one parameter.

  Traced for ONNX with the weights as constants (``jdsr.checkpoints.onnx``), it is
  ``jax.nn.leaky_relu`` with that slope: one ``LeakyRelu``, which the runtimes fuse into
  the convolution before it.
  """
  if layout.is_channels_first() and isinstance(negative_slope, np.ndarray):
    return functools.partial(jax.nn.leaky_relu, negative_slope=float(negative_slope.reshape(())))
  return lambda x: jnp.where(x >= 0, x, negative_slope.astype(x.dtype) * x)


RESAMPLE_SCOPE, SHUFFLE_SCOPE, ATTENTION_SCOPE = 'resample', 'pixel_shuffle', 'attention'


@jax.named_scope(RESAMPLE_SCOPE)
def downsample2(x: Array) -> Array:
  """Bilinear ×0.5 with half-pixel centres and no antialiasing: a 2×2 mean."""
  if layout.is_channels_first():
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _upsample2_axis(x: Array, axis: int) -> Array:
  # Output 2k samples the source at k - 1/4, output 2k+1 at k + 1/4; the
  # neighbours are clamped at the borders (PyTorch clamps the source index).
  n = x.shape[axis]
  if layout.is_channels_first():
    # Two gathers straight to the 2n outputs: no slice or concatenation of a symbolic axis,
    # and no interleaving copy. Output j = 0.75 x[j // 2] + 0.25 x[its neighbour on j's side].
    near, far = layout.shared(('upsample2', str(n)), lambda: _upsample2_indices(n))
    return 0.75 * jnp.take(x, near, axis=axis) + 0.25 * jnp.take(x, far, axis=axis)
  prev = jnp.concatenate([jax.lax.slice_in_dim(x, 0, 1, axis=axis),
                          jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis=axis)
  nxt = jnp.concatenate([jax.lax.slice_in_dim(x, 1, n, axis=axis),
                         jax.lax.slice_in_dim(x, n - 1, n, axis=axis)], axis=axis)
  even = 0.75 * x + 0.25 * prev
  odd = 0.75 * x + 0.25 * nxt
  out = jnp.stack([even, odd], axis=axis + 1)
  shape = list(x.shape)
  shape[axis] = 2 * n
  return out.reshape(shape)


def _upsample2_indices(n) -> tuple[Array, Array]:
  """For ``_upsample2_axis`` in NCHW: each output's source sample and its clamped neighbour."""
  j = jax.lax.iota(jnp.int32, 2 * n)
  near = jax.lax.div(j, 2)  # j // 2 for j >= 0, without jnp.floor_divide's rem
  odd = j - 2 * near  # j % 2
  return near, jnp.clip(near + 2 * odd - 1, 0, jnp.asarray(n, jnp.int32) - 1)


@jax.named_scope(RESAMPLE_SCOPE)
def upsample2(x: Array) -> Array:
  """Bilinear ×2 with half-pixel centres and clamped borders."""
  h, w = layout.spatial_axes()
  return _upsample2_axis(_upsample2_axis(x, h), w)


@jax.named_scope(SHUFFLE_SCOPE)
def pixel_shuffle(x: Array, r: int) -> Array:
  """PyTorch's PixelShuffle in NHWC: out[4h+i, 4w+j, c] = in[h, w, 16c + 4i + j]."""
  if layout.is_channels_first():  # PyTorch's own layout (ONNX's DepthToSpace, mode CRD)
    n, c, h, w = x.shape
    co = c // (r * r)
    x = x.reshape(n, co, r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, co, h * r, w * r)
  n, h, w, c = x.shape
  co = c // (r * r)
  x = x.reshape(n, h, w, co, r, r)
  x = x.transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(n, h * r, w * r, co)


def global_pool(x: Array) -> Array:
  """`nn.AdaptiveAvgPool2d(1)`: the mean over H and W, kept as 1×1."""
  return x.mean(axis=layout.spatial_axes(), keepdims=True)


def box_mean(x: Array, window: tuple[int, int]) -> Array:
  """Local mean over a window, the reference's exact TLSC box filter.

  A 'valid' box filter by cumulative sums, replicate-padded back to the size
  of ``x`` (left/top get (size - out) // 2). ``window`` is clamped to ``x``.
  When the window covers the whole feature it is the global mean. Symbolic H
  and W take ``_box_mean_symbolic`` (``jax.export``) or, inside
  ``layout.channels_first()``, ``_box_mean_banded`` (ONNX): the same means
  to float rounding.
  """
  h, w = layout.spatial_shape(x)
  if not (isinstance(h, int) and isinstance(w, int)):
    symbolic = _box_mean_banded if layout.is_channels_first() else _box_mean_symbolic
    return symbolic(x, window)
  if window[0] >= h and window[1] >= w:
    return global_pool(x)
  k1, k2 = min(h, window[0]), min(w, window[1])
  ah, aw = layout.spatial_axes()
  # jnp.cumsum lowers to an O(n²) reduce_window on CPU; the scan is O(n log n).
  s = jax.lax.associative_scan(jnp.add, jax.lax.associative_scan(jnp.add, x, axis=aw), axis=ah)
  pad = [(0, 0)] * 4
  pad[ah], pad[aw] = (1, 0), (1, 0)
  s = jnp.pad(s, pad)

  def window_sum(top: bool, left: bool) -> Array:
    s_h = jax.lax.slice_in_dim(s, 0 if top else k1, h + 1 - k1 if top else h + 1, axis=ah)
    return jax.lax.slice_in_dim(s_h, 0 if left else k2, w + 1 - k2 if left else w + 1, axis=aw)

  out = (window_sum(False, False) + window_sum(True, True) - window_sum(True, False)
         - window_sum(False, True)) / (k1 * k2)
  oh, ow = layout.spatial_shape(out)
  pad[ah], pad[aw] = ((h - oh) // 2, (h - oh + 1) // 2), ((w - ow) // 2, (w - ow + 1) // 2)
  return jnp.pad(out, pad, mode='edge')


def _box_mean_symbolic(x: Array, window: tuple[int, int]) -> Array:
  """``box_mean`` for shapes only known at run time: one axis after the other.

  The clamp min(size, window) is decided at run time, so neither the global-pool
  shortcut nor the scan (which needs a known length) is used: each axis is zero-padded
  to max(size, window), summed over ``window`` values by doubling (sums of 1, 2, 4, ...
  values, log2(window) additions), and the sums gathered at the replicate-padded
  positions. A window that covers the axis gives the sum of all values.
  """
  for axis, k in zip(layout.spatial_axes(), window):
    n = x.shape[axis]
    size = jax.core.max_dim(n, k)
    pad = [(0, 0)] * 4
    pad[axis] = (0, size - n)
    sums, total, offset, step = jnp.pad(x, pad), None, 0, 1  # sums of `step` values
    while step <= k:
      if k & step:
        part = jax.lax.slice_in_dim(sums, offset, offset + size - k + 1, axis=axis)
        total = part if total is None else total + part
        offset += step
      if 2 * step <= k:
        length = sums.shape[axis] - step
        sums = (jax.lax.slice_in_dim(sums, 0, length, axis=axis)
                + jax.lax.slice_in_dim(sums, step, step + length, axis=axis))
      step *= 2
    n_value = jnp.asarray(n)
    start = jnp.clip(jax.lax.iota(jnp.int32, n) - (k - 1) // 2, 0, jnp.maximum(n_value - k, 0))
    x = jnp.take(total, start, axis=axis) / jnp.minimum(n_value, k).astype(x.dtype)
  return x


def _box_mean_banded(x: Array, window: tuple[int, int]) -> Array:
  """``box_mean`` for shapes only known at run time, as one matrix product per axis.

  For ONNX graphs (``MatMul``, which every runtime runs on its fastest kernels):
  no slice or concatenation along a symbolic axis. Per axis, with k = min(size,
  window) decided at run time, output i is the sum of the k values from
  clip(i - (window - 1) // 2, 0, max(size - window, 0)), divided by k: the
  valid box filter, replicate-padded back as ``box_mean`` does. The sums are a
  product with a 0/1 band matrix (size × size), built once per feature size.
  """
  for axis, k in zip(layout.spatial_axes(), window):
    n = x.shape[axis]
    rows = axis == x.ndim - 2  # (…, H, W): H is the rows of each matrix, W its columns
    band, scale = layout.shared(('box_mean', str(n), k, axis), lambda: _band(n, k, rows))
    x = (jnp.matmul(band, x) if rows else jnp.matmul(x, band)) * scale
  return x


def _band(n, k: int, rows: bool) -> tuple[Array, Array]:
  """For ``_box_mean_banded``: the band matrix, 1 where input j is in output i's window
  (else 0), at [i, j] for ``rows`` (it multiplies from the left) and at [j, i] otherwise;
  and 1 / k."""
  size = jnp.asarray(n, jnp.int32)
  k_run = jnp.minimum(size, k)
  i = jax.lax.iota(jnp.int32, n)
  start = jnp.clip(i - (k - 1) // 2, 0, jnp.maximum(size - k, 0))
  start, j = (start[:, None], i[None, :]) if rows else (start[None, :], i[:, None])
  band = (j >= start) & (j < start + k_run)
  return band.astype(jnp.float32), 1.0 / k_run.astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class TLSC:
  """Test-time local statistics converter settings.

  Every global average pool becomes a local mean whose window is the layer's
  feature size at a ``train_size`` input, times ``base_size / train_size``.
  At a ``train_size`` input this is exactly the global pool.
  """
  base_size: tuple[int, int] = (96, 96)
  train_size: tuple[int, int] = (64, 64)

  def pool(self, input_hw: tuple[int, int]) -> Pool:
    """The pooling function for a network input of ``input_hw`` pixels."""
    return LocalMean(self, tuple(input_hw))


@dataclasses.dataclass(frozen=True)
class LocalMean:
  """TLSC's replacement of the global pool for one input size (see ``TLSC``)."""
  tlsc: TLSC
  input_hw: tuple[int, int]

  def __call__(self, x: Array) -> Array:
    t = self.tlsc
    window = tuple(f * tr // i * b // tr for f, tr, i, b in
                   zip(layout.spatial_shape(x), t.train_size, self.input_hw, t.base_size))
    return box_mean(x, window)


def pool_conv(pool: Pool, conv: nnx.Conv, x: Array) -> Array:
  """``conv(pool(x))`` for a 1×1 ``conv``, as the attention layers compute it.

  Pooling and a 1×1 convolution are both linear, so they commute. The global
  pool goes first, as in the reference; TLSC's local mean goes second, where
  it filters the conv's c/r channels instead of c (the same numbers to float
  rounding, r times less work).
  """
  return pool(conv(x)) if isinstance(pool, LocalMean) else conv(pool(x))
