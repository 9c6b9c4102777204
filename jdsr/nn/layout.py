"""The layout the network is traced in: NHWC, or NCHW for an ONNX graph.

jdsr computes in NHWC, JAX's convention. Tracing the model inside
``channels_first()`` gives the same network as one flat NCHW program, the
layout of ONNX's ``Conv`` and of the CPU runtimes that run ONNX files
(``jdsr.checkpoints.onnx``):

* images and features are (N, C, H, W), the convolutions take lax's
  ('NCHW', 'HWIO', 'NCHW') dimension numbers (an ONNX ``Conv`` each, with no
  layout changes around it), and every layer's axes follow;
* stacked blocks are unrolled rather than scanned, and the ×4 upscaler runs
  in one piece rather than in bands: loops in an ONNX graph keep the runtimes
  from fusing and re-laying-out across them.

The weights are the same (kernels stay HWIO); only the program changes. The
context is read while tracing, not at run time, like ``jax.named_scope``.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Hashable, Iterator

_CHANNELS_FIRST = contextvars.ContextVar('channels_first', default=False)
_SHARED = contextvars.ContextVar('shared', default=None)


@contextlib.contextmanager
def channels_first(enabled: bool = True) -> Iterator[None]:
  """While tracing inside this context, the network takes and gives NCHW arrays (see above)."""
  token, shared = _CHANNELS_FIRST.set(enabled), _SHARED.set({})
  try:
    yield
  finally:
    _CHANNELS_FIRST.reset(token)
    _SHARED.reset(shared)


def shared(key: Hashable, make: Callable[[], Any]) -> Any:
  """``make()``, computed once per ``channels_first()`` context for each ``key``.

  For values that many layers would otherwise compute alike in one trace (the
  index vectors of TLSC's local means at each feature size): one set of nodes
  in the graph instead of one per layer. Outside the context, ``make()``.
  """
  values = _SHARED.get()
  if values is None:
    return make()
  if key not in values:
    values[key] = make()
  return values[key]


def is_channels_first() -> bool:
  """Whether the network is being traced in NCHW (inside ``channels_first()``)."""
  return _CHANNELS_FIRST.get()


def channel_axis() -> int:
  """The channel axis of images and features: 1 (NCHW) or 3 (NHWC)."""
  return 1 if _CHANNELS_FIRST.get() else 3


def spatial_axes() -> tuple[int, int]:
  """The (H, W) axes of images and features: (2, 3) in NCHW, (1, 2) in NHWC."""
  return (2, 3) if _CHANNELS_FIRST.get() else (1, 2)


def spatial_shape(x) -> tuple:
  """(H, W) of an image or feature (``x.shape``'s entries, possibly symbolic)."""
  h, w = spatial_axes()
  return x.shape[h], x.shape[w]


CONV_DIMENSION_NUMBERS = ('NCHW', 'HWIO', 'NCHW')  # lax's, inside channels_first()
