"""The network as an ONNX file, made from jdsr's own JAX program.

``to_onnx(model, tlsc=...)`` traces the forward pass inside
``jdsr.nn.layout.channels_first()`` (one flat NCHW program: an ONNX ``Conv``
per convolution, no layout changes around them, no loops) and converts it with
``jax2onnx``. The file holds:

* input ``x``: float32 (N, 3, H, W) in [0, 1], N, H and W dynamic, H and W
  multiples of 8 (other sizes fail in the graph's first ``Reshape``);
* output ``sr``: float32 (N, 3, 4H, 4W), the ×4 deblurred image, not clipped;
* the weights as initializers (kernels in ONNX's OIHW), TLSC in the graph when
  it was asked for, opset ``OPSET``;
* ``metadata_props``: what ``METADATA_KEYS`` names (the model config, TLSC,
  jdsr's format version), which ``jdsr.inference.runtimes`` checks before it
  trusts a cached file.

Any ONNX runtime runs it: docs/export.md shows ONNX Runtime and OpenVINO
without jdsr installed. Converting needs the ``[onnx]`` extra (jax2onnx and
onnx); running it needs only a runtime.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdsr import config as config_lib
from jdsr import errors
from jdsr.io import files
from jdsr.nn import layers, layout
from jdsr.nn.model import JDSR, with_compute

OPSET = 17
INPUT_NAME, OUTPUT_NAME = 'x', 'sr'
# Bump when the graph changes for the same weights and options: cached files of
# another version are rebuilt.
FORMAT_VERSION = 2
METADATA_KEYS = ('jdsr_onnx_format', 'model_config', 'tlsc', 'input', 'output')
INSTALL_HINT = errors.install_hint('onnx')


def _require(module: str):
  try:
    return __import__(module)
  except ImportError:
    raise ImportError(f'making an ONNX file needs {module}: {INSTALL_HINT}') from None


def forward_nchw(model: JDSR, tlsc: layers.TLSC | None):
  """``forward(x) -> sr``: the ×4 image of NCHW ``x``, as the ONNX graph computes it.

  The input is first reshaped to (N, 3, 8·(H//8), 8·(W//8)): that states that H
  and W are multiples of 8 (the halves and quarters of the image are then exact
  in symbolic shapes), and stops the graph at its first node otherwise.
  """
  model = with_compute(model, conv_impl='xla', dtype='float32')
  # The weights as NumPy arrays: what the trace does to them (a stacked block's
  # slice, a kernel's layout) is done once, here, and lands in the file as constants.
  graphdef, state = nnx.split(model)
  model = nnx.merge(graphdef, jax.tree.map(np.asarray, state))

  def forward(x: jax.Array) -> jax.Array:
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 8, 8, w // 8, 8).reshape(n, c, 8 * (h // 8), 8 * (w // 8))
    with layout.channels_first():
      return model(x, tlsc=tlsc)[1]

  return forward


def architecture(model: JDSR) -> dict:
  """The model config without its compute settings (the graph computes in float32 with XLA's convs)."""
  return {k: v for k, v in dict(model.config).items() if k not in config_lib.COMPUTE_FIELDS}


def metadata(model: JDSR, tlsc: layers.TLSC | None) -> dict[str, str]:
  """The ``metadata_props`` of the ONNX file of ``model`` with ``tlsc``."""
  return {
      'jdsr_onnx_format': str(FORMAT_VERSION),
      'model_config': json.dumps(architecture(model), sort_keys=True),
      'tlsc': json.dumps(dataclasses.asdict(tlsc) if tlsc else None, sort_keys=True),
      'input': f'{INPUT_NAME}: float32 (N, 3, H, W) in [0, 1], H and W multiples of 8',
      'output': f'{OUTPUT_NAME}: float32 (N, 3, 4H, 4W), the x4 deblurred image (not clipped)',
  }


def to_onnx(model: JDSR, *, tlsc: layers.TLSC | None = layers.TLSC()) -> Any:
  """The ``onnx.ModelProto`` of ``model``'s forward pass (see the module docstring)."""
  _require('onnx')
  jax2onnx = _require('jax2onnx')
  spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape('N, 3, H, W'), jnp.float32)
  # The converter's serializer logs a warning per shape-computing constant: not ours to act on.
  serde = logging.getLogger('onnx_ir.serde')
  level = serde.level
  serde.setLevel(logging.ERROR)
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings('ignore', message='Explicitly requested dtype float64')
      proto = jax2onnx.to_onnx(forward_nchw(model, tlsc), [spec], opset=OPSET,
                               model_name='jdsr', input_names=[INPUT_NAME],
                               output_names=[OUTPUT_NAME])
  finally:
    serde.setLevel(level)
  _fold_constant_transposes(proto)
  _share_equal_initializers(proto)
  _name_dims(proto)
  for key, value in metadata(model, tlsc).items():
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, value
  proto.producer_name = 'jdsr'
  return proto


def save_onnx(model: JDSR, path: str | os.PathLike, *,
              tlsc: layers.TLSC | None = layers.TLSC()) -> pathlib.Path:
  """Writes ``to_onnx(model, tlsc=tlsc)`` to ``path``, whole or not at all; returns its path."""
  proto = to_onnx(model, tlsc=tlsc)
  path = pathlib.Path(path)
  files.atomic_write(path, proto.SerializeToString())
  return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
  """The ``metadata_props`` of an ONNX file (its weights are not loaded)."""
  onnx = _require('onnx')
  proto = onnx.load(os.fspath(path), load_external_data=False)
  return {p.key: p.value for p in proto.metadata_props}


def _fold_constant_transposes(proto) -> None:
  """Replaces each ``Transpose`` of an initializer (HWIO kernels → OIHW) by its result.

  Runtimes would fold them at load time; folded, the file holds the kernels as
  ONNX's ``Conv`` takes them, once.
  """
  from onnx import numpy_helper

  graph = proto.graph
  inits = {t.name: t for t in graph.initializer}
  uses: dict[str, int] = {}
  for node in graph.node:
    for name in node.input:
      uses[name] = uses.get(name, 0) + 1
  keep = []
  for node in graph.node:
    source = node.input[0] if node.op_type == 'Transpose' and node.input else None
    if source in inits:
      perm = next((list(a.ints) for a in node.attribute if a.name == 'perm'), None)
      value = numpy_helper.to_array(inits[source])
      value = np.ascontiguousarray(np.transpose(value, perm))
      graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
      uses[source] -= 1
      if not uses[source]:
        graph.initializer.remove(inits.pop(source))
      continue
    keep.append(node)
  del graph.node[:]
  graph.node.extend(keep)


def _share_equal_initializers(proto) -> None:
  """Keeps one initializer of each value: the nodes that used the others use it.

  The converter writes a constant anew at each use, and the network uses some
  kernels more than once (stage 1's encoder runs on four quarters of the image,
  stage 2's on two halves): shared, the file holds each weight once.
  """
  from onnx import numpy_helper

  graph = proto.graph
  first: dict[tuple, str] = {}
  rename: dict[str, str] = {}
  keep = []
  for init in graph.initializer:
    value = numpy_helper.to_array(init)
    key = (value.dtype.str, value.shape, value.tobytes())
    if key in first:
      rename[init.name] = first[key]
    else:
      first[key] = init.name
      keep.append(init)
  if not rename:
    return
  del graph.initializer[:]
  graph.initializer.extend(keep)
  for node in graph.node:
    for i, name in enumerate(node.input):
      if name in rename:
        node.input[i] = rename[name]


def _name_dims(proto) -> None:
  """Plain names for the output's dynamic dimensions ('4*H' rather than '32*floordiv(H, 8)')."""
  dims = proto.graph.output[0].type.tensor_type.shape.dim
  for dim, name in zip(dims, ('N', None, '4*H', '4*W')):
    if name and dim.dim_param:
      dim.dim_param = name
