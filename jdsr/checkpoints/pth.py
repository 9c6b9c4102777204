"""The official PyTorch checkpoint format (``.pth``): its layout, reading and writing.

The official ``.pth`` holds 1,363 tensors (OIHW convolution kernels, no biases,
the one shared PReLU repeated under 57 keys). ``official_layout(config)``
lists them in the official file order, each with the parameter of ours it
belongs to: the path in ``nnx.state(model, nnx.Param)`` and, for stacked
(scanned) blocks, the index into the leading axes. Loading and saving are both
driven by that one table.

PyTorch is imported only when a file is read or written, and only to read
tensors: ``torch.load(..., weights_only=True)``, which cannot run code. Load
any checkpoint with ``jdsr.load`` (``jdsr.checkpoints.load``), which comes here
for ``.pth`` files; nothing that builds, runs or trains a model imports this
module.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections import OrderedDict
from typing import Iterator

import jax
import ml_collections
import numpy as np
from flax import nnx

from jdsr.io import files
from jdsr.errors import CheckpointError, install_hint, one_line
from jdsr.nn.model import JDSR, abstract_model, model_config_of

PRELU_PATH = ('act', 'negative_slope')


@dataclasses.dataclass(frozen=True)
class Entry:
  """One tensor of the official checkpoint and where it lives in our model."""
  key: str  # official key, without any 'module.' prefix
  shape: tuple[int, ...]  # official (PyTorch) shape
  path: tuple  # path of our parameter
  index: tuple[int, ...] = ()  # index into our parameter's stacked leading axes

  @property
  def is_prelu(self) -> bool:
    return self.path == PRELU_PATH


# -- the layout, module by module, in the order PyTorch registers them -------


def _conv(key, path, o, i, k, index=()) -> Iterator[Entry]:
  yield Entry(f'{key}.weight', (o, i, k, k), (*path, 'kernel'), index)


def _prelu(key) -> Iterator[Entry]:
  yield Entry(f'{key}.weight', (1,), PRELU_PATH)


def _cab(key, path, c, r, index=()) -> Iterator[Entry]:
  yield from _conv(f'{key}.CA.conv_du.0', (*path, 'CA', 'conv_du1'), c // r, c, 1, index)
  yield from _conv(f'{key}.CA.conv_du.2', (*path, 'CA', 'conv_du2'), c, c // r, 1, index)
  yield from _conv(f'{key}.body.0', (*path, 'body1'), c, c, 3, index)
  yield from _prelu(f'{key}.body.1')
  yield from _conv(f'{key}.body.2', (*path, 'body2'), c, c, 3, index)


def _cabs(key, path, n, c, r) -> Iterator[Entry]:
  for j in range(n):
    yield from _cab(f'{key}.{j}', path, c, r, (j,))


def _encoder(key, path, cfg, csff) -> Iterator[Entry]:
  c, s, r, n = cfg.n_feat, cfg.scale_unetfeats, cfg.reduction, cfg.num_unet_cab
  widths = (c, c + s, c + 2 * s)
  for i, w in enumerate(widths, 1):
    yield from _cabs(f'{key}.encoder_level{i}', (*path, f'encoder_level{i}'), n, w, r)
  yield from _conv(f'{key}.down12.down.1', (*path, 'down12', 'conv'), c + s, c, 1)
  yield from _conv(f'{key}.down23.down.1', (*path, 'down23', 'conv'), c + 2 * s, c + s, 1)
  if csff:
    for kind in ('enc', 'dec'):
      for i, w in enumerate(widths, 1):
        yield from _conv(f'{key}.csff_{kind}{i}', (*path, f'csff_{kind}{i}'), w, w, 1)


def _decoder(key, path, cfg) -> Iterator[Entry]:
  c, s, r, n = cfg.n_feat, cfg.scale_unetfeats, cfg.reduction, cfg.num_unet_cab
  for i, w in enumerate((c, c + s, c + 2 * s), 1):
    yield from _cabs(f'{key}.decoder_level{i}', (*path, f'decoder_level{i}'), n, w, r)
  yield from _cab(f'{key}.skip_attn1', (*path, 'skip_attn1'), c, r)
  yield from _cab(f'{key}.skip_attn2', (*path, 'skip_attn2'), c + s, r)
  yield from _conv(f'{key}.up21.up.1', (*path, 'up21', 'conv'), c, c + s, 1)
  yield from _conv(f'{key}.up32.up.1', (*path, 'up32', 'conv'), c + s, c + 2 * s, 1)


def _orsnet(key, path, cfg) -> Iterator[Entry]:
  c, s, r = cfg.n_feat, cfg.scale_unetfeats, cfg.reduction
  co, n = c + cfg.scale_orsnetfeats, cfg.num_cab
  for i in (1, 2, 3):
    yield from _cabs(f'{key}.orb{i}.body', (*path, f'orb{i}', 'body'), n, co, r)
    yield from _conv(f'{key}.orb{i}.body.{n}', (*path, f'orb{i}', 'conv'), co, co, 3)
  for name in ('up_enc1', 'up_dec1'):
    yield from _conv(f'{key}.{name}.up.1', (*path, name, 'conv'), c, c + s, 1)
  for name in ('up_enc2', 'up_dec2'):
    yield from _conv(f'{key}.{name}.0.up.1', (*path, name, 0, 'conv'), c + s, c + 2 * s, 1)
    yield from _conv(f'{key}.{name}.1.up.1', (*path, name, 1, 'conv'), c, c + s, 1)
  for kind in ('enc', 'dec'):
    for i in (1, 2, 3):
      yield from _conv(f'{key}.conv_{kind}{i}', (*path, f'conv_{kind}{i}'), co, c, 1)


def _sam(key, c) -> Iterator[Entry]:
  yield from _conv(f'{key}.conv1', (key, 'conv1'), c, c, 1)
  yield from _conv(f'{key}.conv2', (key, 'conv2'), 3, c, 1)
  yield from _conv(f'{key}.conv3', (key, 'conv3'), c, 3, 1)


def _reconstructor(cfg) -> Iterator[Entry]:
  c, inner, nb = cfg.sr_feat, cfg.sr_feat // cfg.mscam_reduction, cfg.n_resblocks
  path = ('SRNet_reconstructor',)
  for g in range(cfg.n_resgroups):
    key = f'SRNet_reconstructor{g + 1}.body'
    for j in range(nb):
      k, p, idx = f'{key}.{j}.body', (*path, 'body'), (g, j)
      yield from _conv(f'{k}.0', (*p, 'body1'), c, c, 3, idx)
      yield from _conv(f'{k}.2', (*p, 'body2'), c, c, 3, idx)
      yield from _conv(f'{k}.3.local_att.0', (*p, 'MSCAM', 'local_att1'), inner, c, 1, idx)
      yield from _conv(f'{k}.3.local_att.2', (*p, 'MSCAM', 'local_att2'), c, inner, 1, idx)
      yield from _conv(f'{k}.3.global_att.1', (*p, 'MSCAM', 'global_att1'), inner, c, 1, idx)
      yield from _conv(f'{k}.3.global_att.3', (*p, 'MSCAM', 'global_att2'), c, inner, 1, idx)
    yield from _conv(f'{key}.{nb}', (*path, 'conv'), c, c, 3, (g,))


def official_layout(cfg: ml_collections.ConfigDict) -> list[Entry]:
  """Every tensor of the official checkpoint for a model config, in file order."""
  c, r = cfg.n_feat, cfg.reduction
  co, sr = c + cfg.scale_orsnetfeats, cfg.sr_feat

  def gen():
    for i in (1, 2, 3):
      yield from _conv(f'shallow_feat{i}.0', (f'shallow_feat{i}', 'conv'), c, 3, 3)
      yield from _cab(f'shallow_feat{i}.1', (f'shallow_feat{i}', 'cab'), c, r)
    for stage in (1, 2):
      yield from _encoder(f'stage{stage}_encoder', (f'stage{stage}_encoder',), cfg, stage == 2)
      yield from _decoder(f'stage{stage}_decoder', (f'stage{stage}_decoder',), cfg)
    yield from _orsnet('stage3_orsnet', ('stage3_orsnet',), cfg)
    yield from _sam('sam12', c)
    yield from _sam('sam23', c)
    yield from _conv('concat12', ('concat12',), c, 2 * c, 3)
    yield from _conv('concat23', ('concat23',), co, 2 * c, 3)
    yield from _conv('tail', ('tail',), 3, co, 3)
    yield from _cab('SRNet_sr_cab', ('SRNet_sr_cab',), co, r)
    yield from _conv('SRNet_before_rec.0', ('SRNet_before_rec',), sr, co, 3)
    yield from _prelu('SRNet_before_rec.1')
    yield from _conv('SRNet_HRconv', ('SRNet_HRconv',), sr, sr, 3)
    yield from _reconstructor(cfg)
    yield from _conv('SRNet_upscale.0', ('SRNet_upscale', 'conv1'), sr * cfg.scale ** 2, sr, 1)
    yield from _conv('SRNet_upscale.2', ('SRNet_upscale', 'conv2'), 3, sr, 3)

  return list(gen())


# -- reading and writing -------------------------------------------------------


def _torch():
  """PyTorch, an optional dependency needed for .pth files alone; else a one-line CheckpointError."""
  try:
    import torch
  except ImportError:
    raise CheckpointError('reading and writing .pth files needs PyTorch: '
                          f"{install_hint('torch')}") from None
  return torch


def read(path: str | os.PathLike) -> dict:
  """The state dict of an official ``.pth``: its tensors by key (without 'module.'), not yet converted.

  Accepts ``{'state_dict': ...}`` (as the official training script saves it)
  or a bare state dict. Only tensors are unpickled (``weights_only=True``): a
  file that would run code when loaded is refused. The file is memory-mapped,
  so reading it materialises no tensor: ``state_dict_to_params`` checks every
  name and shape from the tensors' metadata first, and converts only tensors
  that fit the model (``to_array``), so a small file that declares huge tensors
  cannot exhaust memory.
  """
  torch = _torch()
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f'{path}: no such file')
  try:
    try:
      obj = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except RuntimeError as e:
      if 'mmap' not in str(e):
        raise
      obj = torch.load(path, map_location='cpu', weights_only=True)  # the legacy format
  except pickle.UnpicklingError as e:
    raise CheckpointError(
        f'{path}: refused to load: the file holds more than tensors and plain containers '
        f'(only weights_only=True loading is allowed, as it cannot run code): {one_line(e)}'
    ) from e
  except Exception as e:  # noqa: BLE001 - torch raises many kinds for a corrupt file
    raise CheckpointError(f'{path}: not a readable PyTorch checkpoint '
                          f'({one_line(e, kind=True)})') from e
  state = obj.get('state_dict', obj) if isinstance(obj, dict) else obj
  if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
    raise CheckpointError(f'{path}: expected a state dict of tensors (or a dict with a '
                          f"'state_dict' entry), got {type(state).__name__}")
  out = {}
  for key, value in state.items():
    key = key[len('module.'):] if key.startswith('module.') else key
    if key in out:
      raise CheckpointError(f"{path}: key {key!r} appears both with and without 'module.'")
    out[key] = value
  return out


def to_array(value, key: str, source: str) -> np.ndarray:
  """One tensor (or array) of a state dict as float32 NumPy; a CheckpointError if not finite.

  Real floating-point tensors only: float16, bfloat16 and float64 are cast to
  float32 (what the network computes in); integer, boolean and complex tensors
  are refused, naming the key.
  """
  if not isinstance(value, np.ndarray):
    if not value.dtype.is_floating_point:  # torch: ints, bools and complex are not
      raise CheckpointError(f'{source}: {key} is a {str(value.dtype).removeprefix("torch.")} '
                            'tensor, not floating point: refusing to load it as a weight')
    value = value.detach().float().numpy()
  elif not np.issubdtype(value.dtype, np.floating):
    raise CheckpointError(f'{source}: {key} is a {value.dtype} array, not floating point: '
                          'refusing to load it as a weight')
  value = np.asarray(value, np.float32)
  if not np.isfinite(value).all():
    raise CheckpointError(f'{source}: {key} holds NaN or inf values: refusing to load broken '
                          'weights')
  return value


def _flat_params(model: JDSR) -> dict[tuple, nnx.Variable]:
  return dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))


def state_dict_to_params(state_dict: dict, cfg: ml_collections.ConfigDict,
                         shapes: dict[tuple, tuple[int, ...]], source: str = 'checkpoint'
                         ) -> dict[tuple, np.ndarray]:
  """Our parameters (path → array) from an official state dict (arrays or tensors); strict.

  Names and shapes are checked before any value is read or converted.
  """
  layout = official_layout(cfg)
  expected = {e.key: e for e in layout}
  missing = [k for k in expected if k not in state_dict]
  unexpected = [k for k in state_dict if k not in expected]
  misshaped = [f'{k}: {tuple(v.shape)} (expected {expected[k].shape})'
               for k, v in state_dict.items()
               if k in expected and tuple(v.shape) != expected[k].shape]
  if missing or unexpected or misshaped:
    lines = [f'{source} does not fit the model config (pass the config it was made for)']
    for title, items in (('missing', missing), ('unexpected', unexpected),
                         ('wrong shape', misshaped)):
      if items:
        shown = ', '.join(items[:20]) + (f', ... ({len(items)} in all)' if len(items) > 20 else '')
        lines.append(f'{title} keys ({len(items)}): {shown}')
    raise CheckpointError('; '.join(lines))

  prelu = {e.key: float(to_array(state_dict[e.key], e.key, source)[0])
           for e in layout if e.is_prelu}
  values = set(prelu.values())
  if len(values) > 1:
    raise CheckpointError(
        f'{source}: the {len(prelu)} copies of the shared PReLU disagree ({sorted(values)[:5]}); '
        'the official network has ONE PReLU parameter')

  params = {path: np.zeros(shape, np.float32) for path, shape in shapes.items()}
  filled = {path: np.zeros(shape[:max(len(shape) - 4, 0)], np.int32)
            for path, shape in shapes.items()}
  for e in layout:
    if e.is_prelu:
      continue
    params[e.path][e.index] = to_array(state_dict[e.key], e.key, source).transpose(2, 3, 1, 0)
    filled[e.path][e.index] += 1
  params[PRELU_PATH] = np.asarray(values.pop(), np.float32).reshape(shapes[PRELU_PATH])
  filled[PRELU_PATH] += 1
  bad = [p for p, f in filled.items() if not np.all(f == 1)]
  if bad:  # the layout and the model disagree: a bug of ours, not the file's
    raise AssertionError(f'official_layout does not cover each parameter once: {bad}')
  return params


def params_to_state_dict(model: JDSR) -> 'OrderedDict[str, np.ndarray]':
  """Our parameters as an official state dict (OIHW, file order, PReLU repeated)."""
  flat = {p: np.asarray(v[...]) for p, v in _flat_params(model).items()}
  out = OrderedDict()
  for e in official_layout(model_config_of(model)):
    w = flat[e.path]
    if e.is_prelu:
      out[e.key] = w.reshape(1).astype(np.float32)
    else:
      out[e.key] = np.ascontiguousarray(w[e.index].transpose(3, 2, 0, 1))
  return out


def load(path: str | os.PathLike, config: ml_collections.ConfigDict) -> JDSR:
  """A model of architecture ``config`` with the weights of an official ``.pth``."""
  return from_state_dict(read(path), config, os.fspath(path))


def from_state_dict(state_dict: dict[str, np.ndarray], config: ml_collections.ConfigDict,
                    source: str = 'state dict') -> JDSR:
  """A model of architecture ``config`` with an official state dict's weights (no PyTorch)."""
  model = abstract_model(config)
  flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
  params = state_dict_to_params(state_dict, config, {p: tuple(v.shape) for p, v in flat}, source)
  nnx.update(model, nnx.from_flat_state(
      [(p, v.replace(jax.numpy.asarray(params[p]))) for p, v in flat]))
  return model


def save(model: JDSR, path: str | os.PathLike) -> None:
  """Write the model as an official ``.pth`` (``{'state_dict': ...}``), atomically."""
  torch = _torch()

  state_dict = OrderedDict((k, torch.from_numpy(v)) for k, v in params_to_state_dict(model).items())
  files.atomic_write(path, lambda tmp: torch.save({'state_dict': state_dict}, tmp))
