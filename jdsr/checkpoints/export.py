"""Exporting a model to run without jdsr: a ``jax.export`` program, a SavedModel, an ONNX file.

``export(model, DIR, formats=...)`` (the command ``jdsr-export``, ``jdsr.cli.export``)
writes the directory ``DIR`` with the files of ``formats`` ('jax', 'saved_model',
'onnx'; by default the first two):

* ``model.jax``: the ``jax.export`` serialization of ``forward(weights, x) -> sr``,
  for ``x`` float32 (N, H, W, 3) in [0, 1] with N, H and W symbolic, H and W
  multiples of 8 (``jax.export.symbolic_shape('b, 8*h, 8*w, 3')``), and ``sr``
  float32 (N, 4H, 4W, 3). Run it with ``jax`` alone (README, "Export and deploy").
* ``weights.npz``: ``weights``, the model's parameters by name.
* ``saved_model/``: a TensorFlow SavedModel of the same program (``jax2tf``,
  native serialization), the parameters as variables: ``serve(x)`` and the
  ``serving_default`` signature (input ``x``, output ``sr``), for TF Serving.
* ``model.onnx`` (format 'onnx'): the ONNX file of ``jdsr.checkpoints.onnx``,
  NCHW: input ``x`` float32 (N, 3, H, W) in [0, 1], output ``sr`` (N, 3, 4H,
  4W), N, H and W dynamic, opset ``onnx.OPSET``, for ONNX Runtime, OpenVINO and
  the tools that read ONNX (docs/export.md). Needs the ``[onnx]`` extra.
* ``export.json``: what was exported (TLSC, dtype, platforms, shapes, model config).

TLSC (on by default, ``--notlsc``) and the precision (float32, the only one for
now) are fixed at export time. The program is lowered for ``--platforms``
(default cpu and cuda; the caller's platform picks its lowering). For CPU alone it
uses Winograd convolutions (``conv_impl='auto'``), otherwise XLA's, which
every platform runs well. ``DIR`` is written whole or not at all: into a
temporary directory beside it, renamed when complete. ``--overwrite`` replaces an
earlier export and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import secrets
import shutil
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdsr import errors
from jdsr.io import files
from jdsr.nn import layers
from jdsr.nn.model import JDSR, with_compute

INPUT_SHAPE = 'b, 8*h, 8*w, 3'  # batch, height and width symbolic; H and W multiples of 8
DEFAULT_PLATFORMS = ('cpu', 'cuda')
JAX_FILE, WEIGHTS_FILE, SAVED_MODEL_DIR, ONNX_FILE, INFO_FILE = (
    'model.jax', 'weights.npz', 'saved_model', 'model.onnx', 'export.json')
FORMATS = ('jax', 'saved_model', 'onnx')
DEFAULT_FORMATS = ('jax', 'saved_model')


def conv_impl(platforms: Sequence[str]) -> str:
  """The convolutions for ``platforms``: 'auto' (Winograd) for CPU alone, else XLA's."""
  return 'auto' if tuple(platforms) == ('cpu',) else 'xla'


def for_platforms(model: JDSR, platforms: Sequence[str]) -> JDSR:
  """``model`` with the convolutions for ``platforms`` (``conv_impl``), in float32, the same weights."""
  return with_compute(model, conv_impl=conv_impl(platforms), dtype='float32')


def forward_fn(model: JDSR, tlsc: layers.TLSC | None
               ) -> tuple[Callable[[dict, jax.Array], jax.Array], dict[str, np.ndarray]]:
  """``(forward, weights)``: ``forward(weights, x)`` is ``model(x, tlsc=tlsc)``'s ×4 image.

  ``weights`` maps each variable's path ('SRNet_upscale/conv1/kernel', ...) to its
  value: plain arrays, so that the exported program needs nothing from flax.
  """
  graphdef, state = nnx.split(model)
  flat = list(nnx.to_flat_state(state))
  names = ['/'.join(str(k) for k in path) for path, _ in flat]
  weights = {name: np.asarray(var.get_value()) for name, (_, var) in zip(names, flat)}

  def forward(weights: dict, x: jax.Array) -> jax.Array:
    values = [(path, var.replace(weights[name])) for name, (path, var) in zip(names, flat)]
    return nnx.merge(graphdef, nnx.from_flat_state(values))(x, tlsc=tlsc)[1]

  return forward, weights


def export_jax(model: JDSR, *, tlsc: layers.TLSC | None = layers.TLSC(),
               platforms: Sequence[str] = DEFAULT_PLATFORMS
               ) -> tuple[jax.export.Exported, dict[str, np.ndarray]]:
  """The ``jax.export.Exported`` forward pass (symbolic ``INPUT_SHAPE``) and its weights."""
  forward, weights = forward_fn(for_platforms(model, platforms), tlsc)
  specs = jax.tree.map(lambda w: jax.ShapeDtypeStruct(w.shape, w.dtype), weights)
  x = jax.ShapeDtypeStruct(jax.export.symbolic_shape(INPUT_SHAPE), jnp.float32)
  exported = jax.export.export(jax.jit(forward), platforms=tuple(platforms))(specs, x)
  return exported, weights


def save_saved_model(model: JDSR, path: str | os.PathLike, *,
                     tlsc: layers.TLSC | None = layers.TLSC(),
                     platforms: Sequence[str] = DEFAULT_PLATFORMS) -> None:
  """Writes the forward pass as a TensorFlow SavedModel (jax2tf, native serialization)."""
  try:
    import tensorflow as tf
  except ImportError:
    raise ValueError(f"the SavedModel needs TensorFlow: {errors.install_hint('export')} (or "
                     'pass --no_saved_model for the jax.export program alone)') from None
  from jax.experimental import jax2tf

  forward, weights = forward_fn(for_platforms(model, platforms), tlsc)
  converted = jax2tf.convert(forward, polymorphic_shapes=[None, f'({INPUT_SHAPE})'],
                             native_serialization_platforms=tuple(platforms),
                             with_gradient=False)
  module = tf.Module()
  module.weights = {k: tf.Variable(v, trainable=False, name=k.replace('/', '.'))
                    for k, v in weights.items()}

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32, name='x')])
  def serve(x):
    return {'sr': converted(module.weights, x)}

  module.serve = serve
  tf.saved_model.save(module, os.fspath(path), signatures={'serving_default': serve})


def export(model: JDSR, out: str | os.PathLike, *, tlsc: layers.TLSC | None = layers.TLSC(),
           platforms: Sequence[str] = DEFAULT_PLATFORMS,
           formats: Sequence[str] = DEFAULT_FORMATS,
           overwrite: bool = False, source: str | None = None) -> pathlib.Path:
  """Writes the export directory ``out`` (see the module docstring); returns its path.

  ``overwrite`` replaces an earlier export (a directory with export.json), nothing
  else; the new one is written beside it first, so a failure leaves the old one whole.
  """
  formats = tuple(dict.fromkeys(formats))
  if not formats or set(formats) - set(FORMATS):
    raise ValueError(f'formats must be some of {FORMATS}, got {formats}')
  out = pathlib.Path(out).absolute()
  if out.exists() or out.is_symlink():
    if not overwrite:
      raise FileExistsError(f'{out} exists; pass --overwrite to replace an earlier export')
    if out.is_symlink() or not (out / INFO_FILE).is_file():
      raise FileExistsError(f'{out} exists and is not a jdsr export: refusing to replace it')
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = out.parent / f'.{out.name}.tmp-{secrets.token_hex(4)}'
  tmp.mkdir()  # the permissions of a normally made folder (mkdtemp's are private)
  try:
    written = []
    if 'jax' in formats:
      exported, weights = export_jax(model, tlsc=tlsc, platforms=platforms)
      files.atomic_write(tmp / JAX_FILE, exported.serialize())
      files.atomic_write(tmp / WEIGHTS_FILE, lambda path: np.savez(path, **weights))
      written += [JAX_FILE, WEIGHTS_FILE]
    if 'saved_model' in formats:
      save_saved_model(model, tmp / SAVED_MODEL_DIR, tlsc=tlsc, platforms=platforms)
      written.append(SAVED_MODEL_DIR)
    if 'onnx' in formats:
      from jdsr.checkpoints import onnx as onnx_lib
      try:
        onnx_lib.save_onnx(model, tmp / ONNX_FILE, tlsc=tlsc)
      except ImportError as e:
        raise ValueError(str(e)) from None
      written.append(ONNX_FILE)
    info = {
        'input': f'x: float32 ({INPUT_SHAPE}) in [0, 1]; H and W multiples of 8',
        'output': 'sr: float32 (b, 32*h, 32*w, 3), the x4 deblurred image (not clipped)',
        'tlsc': dataclasses.asdict(tlsc) if tlsc else None,
        'dtype': 'float32',
        'platforms': list(platforms),
        'conv_impl': conv_impl(platforms),
        'files': written,
        'onnx': ({'file': ONNX_FILE, 'opset': onnx_lib.OPSET, 'layout': 'NCHW',
                  'input': 'x: float32 (N, 3, H, W) in [0, 1]; H and W multiples of 8',
                  'output': 'sr: float32 (N, 3, 4H, 4W), the x4 deblurred image (not clipped)'}
                 if 'onnx' in formats else None),
        'model_config': dict(model.config),
        'checkpoint': source,
        'jax_version': jax.__version__,
    }
    files.atomic_write(tmp / INFO_FILE, json.dumps(info, indent=2) + '\n')
    files.swap_in_folder(tmp, out)  # an earlier export (checked above) is replaced
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return out
