"""Checkpoints: one ``load`` for every kind, one ``save``, and the project's orbax layout.

A model can come from three kinds of path, and ``kind(path)`` tells which:

* ``'pth'``: an official PyTorch ``.pth`` file. It holds no model config, so
  the architecture is the ``config`` given to ``load`` (the paper's model by
  default). Read by ``jdsr.checkpoints.pth``, imported only then.
* ``'checkpoint'``: a jdsr checkpoint, an orbax directory with two items,
  ``params`` (the ``nnx.Param`` state) and ``model_config`` (JSON). ``save``
  writes these; training writes them under ``WORKDIR/checkpoints/STEP`` and
  ``WORKDIR/best/STEP``, with two more items, ``opt_state`` and ``train``
  (see ``jdsr.train.loop``).
* ``'workdir'``: a training workdir. ``resolve`` picks its best checkpoint by
  validation PSNR, or else its latest.

The package also holds ``pth`` (the official format), ``training`` (the run
guard: a training run's checkpoints, resuming from the last good one, full
disks, the workdir's lock), ``export`` (``jax.export`` and SavedModel) and
``onnx`` (the ONNX file).

Anything else is a ``CheckpointError`` with a one-line message that names the
path. So is a checkpoint that cannot be read or does not fit the config.

With several processes, one process writes each checkpoint: the arrays are
replicated, and ``write_from_one_process`` (which ``train.py --distributed``
calls) turns off orbax's replica-parallel writing, which would split each
array's bytes among the processes holding a copy, so replica 0, on process 0,
writes them all; process 0 also writes the metadata.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import secrets
import shutil

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from jdsr import config as config_lib
from jdsr.errors import CheckpointError, one_line
from jdsr.io import files
from jdsr.nn.model import JDSR, abstract_model

PTH, CHECKPOINT, WORKDIR = 'pth', 'checkpoint', 'workdir'



def write_from_one_process() -> None:
  """Make process 0 write every checkpoint's arrays (for runs of several processes).

  The arrays are replicated; orbax's replica-parallel writing would split each
  array's bytes among the processes that hold a copy. This replaces orbax's
  handler for ``jax.Array`` process-wide, so ``train.py --distributed`` calls it
  at start-up; importing jdsr changes nothing.
  """
  ocp.type_handlers.register_type_handler(
      jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)


# -- what kind of path is this? ----------------------------------------------------


@contextlib.contextmanager
def quiet_logs():
  """Silences what orbax logs while it reads or writes a damaged checkpoint.

  It logs each failed write with its traceback (through absl), and asyncio logs the reads it
  cancels when one fails; the caller reports the failure in one line instead.
  """
  loggers = [logging.getLogger(name) for name in ('absl', 'asyncio')]
  levels = [log.level for log in loggers]
  for log in loggers:
    log.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    for log, level in zip(loggers, levels):
      log.setLevel(level)


def steps(directory: str | os.PathLike) -> list[int]:
  """The complete checkpoint steps in an orbax manager directory (none if it does not exist)."""
  directory = pathlib.Path(directory)
  return sorted(ocp.utils.checkpoint_steps(directory)) if directory.is_dir() else []


def kind(path: str | os.PathLike) -> str:
  """``'pth'``, ``'checkpoint'`` or ``'workdir'`` (see the module docstring); else CheckpointError."""
  path = pathlib.Path(path)
  if path.suffix == '.pth' and not path.is_dir():
    return PTH
  if not path.exists():
    raise CheckpointError(f'{path}: no such file or directory')
  if (path / 'params').is_dir():
    return CHECKPOINT
  if steps(path / 'best') or steps(path / 'checkpoints'):
    return WORKDIR
  raise CheckpointError(
      f'{path}: not a checkpoint: expected an official .pth file, a jdsr checkpoint directory '
      '(with params/ inside) or a training workdir (with best/STEP or checkpoints/STEP inside)')


def resolve(path: str | os.PathLike) -> pathlib.Path:
  """The checkpoint that ``path`` stands for: a workdir's best (else latest); any other as is."""
  path = pathlib.Path(path)
  if kind(path) != WORKDIR:
    return path
  for sub in ('best', 'checkpoints'):
    if found := steps(path / sub):
      return path / sub / str(found[-1])
  raise AssertionError('unreachable: kind() found steps')


# -- the orbax layout ----------------------------------------------------------------


def save_args(params: nnx.State, model_config: dict, *, opt_state=None,
              train: dict | None = None) -> ocp.args.Composite:
  """What a jdsr checkpoint holds: params and model config; a training one adds opt_state, train."""
  items = {'params': ocp.args.StandardSave(params),
           'model_config': ocp.args.JsonSave(dict(model_config))}
  if opt_state is not None:
    items['opt_state'] = ocp.args.StandardSave(opt_state)
  if train is not None:
    items['train'] = ocp.args.JsonSave(train)
  return ocp.args.Composite(**items)


def restore_args(*, params=None, opt_state=None, model_config: bool = False,
                 train: bool = False) -> ocp.args.Composite:
  """The items of a jdsr checkpoint to read; ``params``/``opt_state``: the abstract targets."""
  items = {}
  if params is not None:
    items['params'] = ocp.args.StandardRestore(params)
  if opt_state is not None:
    items['opt_state'] = ocp.args.StandardRestore(opt_state)
  if model_config:
    items['model_config'] = ocp.args.JsonRestore()
  if train:
    items['train'] = ocp.args.JsonRestore()
  return ocp.args.Composite(**items)


# -- load and save -----------------------------------------------------------------


def check_fits(saved: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                where: pathlib.Path) -> None:
  """CheckpointError unless ``config`` describes the architecture the checkpoint was saved for."""
  keys = (set(saved) | set(config)) - set(config_lib.COMPUTE_FIELDS)
  differ = sorted(k for k in keys if saved.get(k) != config.get(k))
  if differ:
    theirs = ', '.join(f'{k}={saved.get(k)!r}' for k in differ)
    ours = ', '.join(f'{k}={config.get(k)!r}' for k in differ)
    raise CheckpointError(f'{where}: saved for a model with {theirs}; the config says {ours}')


def non_finite(tree) -> list[str]:
  """The paths of the floating-point arrays in ``tree`` that hold NaN or inf values."""
  return [jax.tree_util.keystr(path) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
          if jax.numpy.issubdtype(leaf.dtype, jax.numpy.inexact)
          and not np.isfinite(np.asarray(leaf, np.float32)).all()]


def load(path: str | os.PathLike, config: ml_collections.ConfigDict | None = None) -> JDSR:
  """A model from any checkpoint: an official ``.pth``, a jdsr checkpoint or a training workdir.

  ``config``: a model config, or an experiment config with a ``model`` field.
  For a ``.pth`` it is the architecture (default: the paper's model). A jdsr
  checkpoint carries its own; a ``config`` given with it must describe the
  same architecture, and its compute settings (``conv_impl``) are used.
  """
  path = pathlib.Path(path)
  if config is not None and 'model' in config:
    config = config.model
  if kind(path) == PTH:
    from jdsr.checkpoints import pth  # torch, only for .pth files
    return pth.load(path, config_lib.model_config() if config is None else config)
  directory = resolve(path).absolute()
  if directory != path.absolute():
    logging.info('%s: loading %s', path, directory)
  try:
    with quiet_logs(), ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
      saved = ckptr.restore(directory, restore_args(model_config=True)).model_config
      saved = config_lib.model_config(**saved)
      if config is None:
        config = saved
      else:
        check_fits(saved, config, directory)
      model = abstract_model(config)
      # On this process's first device, whatever devices and processes saved it.
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            nnx.state(model, nnx.Param))
      restored = ckptr.restore(directory, restore_args(params=target))
  except CheckpointError:
    raise
  except Exception as e:  # noqa: BLE001 - orbax raises many kinds for a damaged checkpoint
    raise CheckpointError(f'{directory}: cannot read the checkpoint ({one_line(e, kind=True)})') from e
  broken = non_finite(restored.params)
  if broken:
    raise CheckpointError(f'{directory}: {len(broken)} parameters hold NaN or inf values '
                          f'({", ".join(broken[:3])}): refusing to load broken weights')
  nnx.update(model, restored.params)
  return model


def save(model: JDSR, path: str | os.PathLike, *, overwrite: bool = False) -> None:
  """Write a model: an official ``.pth`` if ``path`` ends in ``.pth``, else a jdsr checkpoint.

  ``overwrite`` replaces an existing ``.pth`` file or jdsr checkpoint, and
  nothing else: any other file or directory at ``path`` is a CheckpointError.
  The new checkpoint is written whole beside the old one, then put in its
  place: a write that fails (a full disk) leaves the old one as it was and
  raises a CheckpointError in one line.
  """
  path = pathlib.Path(path).absolute()
  is_pth = path.suffix == '.pth'
  if path.exists() or path.is_symlink():
    replaceable = path.is_file() if is_pth else (path / 'params').is_dir()
    if not overwrite:
      raise FileExistsError(f'{path} exists; pass overwrite=True to replace it')
    if not replaceable or path.is_symlink():
      raise CheckpointError(f'{path} exists and is not a jdsr checkpoint or .pth file: '
                            'refusing to replace it')
  if is_pth:
    from jdsr.checkpoints import pth  # torch, only for .pth files
    pth.save(model, path)
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f'.{path.name}.tmp-{secrets.token_hex(4)}'
  try:
    with quiet_logs(), ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
      ckptr.save(tmp, save_args(nnx.state(model, nnx.Param), model.config))
    files.swap_in_folder(tmp, path)  # an earlier checkpoint (checked above) is replaced
  except Exception as e:
    raise CheckpointError(f'could not write the checkpoint {path} ({one_line(e)}); '
                          + ('the old one is untouched' if path.exists() else 'nothing was written')
                          ) from None
  finally:
    for leftover in path.parent.glob(tmp.name + '*'):  # left only by a failed write (orbax's too)
      shutil.rmtree(leftover, ignore_errors=True)
