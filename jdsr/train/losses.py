"""The training losses of the three training phases.

Everything is NHWC float32, jit-friendly and differentiable. Each function
reproduces the official implementation's loss exactly (see docs/network.md,
"Losses"); every mean is over all elements:

* ``charbonnier``: mean(sqrt((x - y)² + ε²)), ε = 1e-3.
* ``edge``: the Charbonnier loss between Laplacian-pyramid details
  lap(x) = x - g(u(g(x))), g a 5×5 Gaussian on replicate padding, u the
  zero-interleaved ×4 of every second pixel.
* ``l1``: mean|x - y|.
* ``gradient``: the L1 distance of Sobel responses, Sx and Sy separately,
  cross-correlation with zero padding 1.
* ``deblur_loss`` / ``sr_loss`` / ``joint_loss``: the losses of training
  phases 1, 2 and 3.

The network returns its stage images as ``[stage3, stage2, stage1]``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

EPS = 1e-3
EDGE_WEIGHT = 0.05
GRADIENT_WEIGHT = 0.1
DEBLUR_WEIGHT = 0.5

_K = np.array([0.05, 0.25, 0.4, 0.25, 0.05], np.float32)
GAUSSIAN = np.outer(_K, _K)
SOBEL_X = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)
SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32)


def depthwise(x: Array, kernel: np.ndarray, padding: str | Sequence[tuple[int, int]] = 'VALID') -> Array:
  """Cross-correlates every channel of ``x`` (NHWC) with the same 2-D ``kernel``.

  ``padding`` is zero padding, as for ``jax.lax.conv_general_dilated``.
  """
  c = x.shape[-1]
  kh, kw = kernel.shape
  w = jnp.broadcast_to(jnp.asarray(kernel, x.dtype)[:, :, None, None], (kh, kw, 1, c))
  return jax.lax.conv_general_dilated(x, w, window_strides=(1, 1), padding=padding,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      feature_group_count=c)


def gaussian(x: Array) -> Array:
  """The 5×5 Gaussian g, on replicate padding of 2."""
  x = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode='edge')
  return depthwise(x, GAUSSIAN)


def laplacian(x: Array) -> Array:
  """lap(x) = x - g(u(g(x))); u keeps the even rows and columns, ×4, zeros elsewhere."""
  filtered = gaussian(x)
  mask = jnp.zeros(x.shape[1:3], x.dtype).at[::2, ::2].set(4.0)
  return x - gaussian(filtered * mask[None, :, :, None])


def charbonnier(x: Array, y: Array, eps: float = EPS) -> Array:
  """mean(sqrt((x - y)² + eps²))."""
  d = x - y
  return jnp.mean(jnp.sqrt(d * d + eps * eps))


def edge(x: Array, y: Array) -> Array:
  """The Charbonnier loss between the Laplacian details of ``x`` and ``y``."""
  return charbonnier(laplacian(x), laplacian(y))


def l1(x: Array, y: Array) -> Array:
  """mean|x - y|."""
  return jnp.mean(jnp.abs(x - y))


def sobel(x: Array) -> tuple[Array, Array]:
  """(Sx(x), Sy(x)) per channel: cross-correlation with zero padding 1."""
  pad = ((1, 1), (1, 1))
  return depthwise(x, SOBEL_X, pad), depthwise(x, SOBEL_Y, pad)


def gradient(x: Array, y: Array) -> Array:
  """mean|Sx(x) - Sx(y)| + mean|Sy(x) - Sy(y)|."""
  gx, gy = sobel(x - y)  # the Sobel filters are linear
  return jnp.mean(jnp.abs(gx)) + jnp.mean(jnp.abs(gy))


def _stage_loss(image: Array, sharp_lr: Array) -> Array:
  return charbonnier(image, sharp_lr) + EDGE_WEIGHT * edge(image, sharp_lr)


def deblur_loss(stage_images: Sequence[Array], sharp_lr: Array) -> Array:
  """Phase 1: Σ over the 3 stage images of Charbonnier + 0.05·Edge against ``sharp_lr``."""
  return sum(_stage_loss(image, sharp_lr) for image in stage_images)


def sr_loss(sr: Array, sharp_hr: Array) -> Array:
  """Phase 2: L1 + 0.1·Gradient against ``sharp_hr``."""
  return l1(sr, sharp_hr) + GRADIENT_WEIGHT * gradient(sr, sharp_hr)


def joint_loss(stage_images: Sequence[Array], sr: Array, sharp_lr: Array, sharp_hr: Array) -> Array:
  """Phase 3: ``sr_loss`` + 0.5·Σ over stages 2 and 1 (not stage 3) of the stage loss.

  ``stage_images`` is ``[stage3, stage2, stage1]``; stage 3 does not enter.
  """
  _, stage2, stage1 = stage_images
  return sr_loss(sr, sharp_hr) + DEBLUR_WEIGHT * (_stage_loss(stage2, sharp_lr)
                                                  + _stage_loss(stage1, sharp_lr))
