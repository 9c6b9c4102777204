"""The training loop: ``train_and_evaluate(config, workdir)`` runs one phase.

What each phase trains, freezes and optimises is in ``jdsr.train.phases`` (the
``PHASES`` table, the optimizer and the step); where the data comes from, in
``jdsr.data.sources``; the checkpoint layout, in ``jdsr.checkpoints``. This
module runs the loop: devices, the compiled step, validation, checkpoints,
metrics, resuming.

The state (parameters, Adam moments, step) lives replicated on a
``jax.sharding.Mesh`` with one axis, 'data'; every batch is sharded over it.
Training is deterministic: the model has no randomness, and the data
pipeline (``jdsr.data.pipeline``, grain) is a pure function of (config.seed,
batches consumed); a checkpoint saves the loader's state with the step, and a
resumed run sets it and continues with the very batches it would have had.

Files under ``workdir``:

* ``checkpoints/<step>/``: orbax checkpoints (periodic and final) with
  ``params`` and ``model_config`` (so ``jdsr.load`` and ``eval.py
  --checkpoint`` read them), ``opt_state`` and ``train`` (step, seed, batch
  size, the loader's state). Written to a temporary directory and renamed when
  complete, so a run killed while saving leaves the last complete checkpoint
  usable; training resumes from the latest.
* ``best/<step>/``: the checkpoint with the best validation PSNR so far.
* TensorBoard event files (``tensorboard --logdir workdir``, written by
  ``jdsr.train.writer`` without TensorFlow): train loss,
  learning rates, steps/s, validation PSNR/SSIM and image summaries
  (input | output | target).

``jdsr.load(workdir)`` loads its best checkpoint, else its latest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import threading
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from clu import metrics
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from jdsr import checkpoints, config as config_lib
from jdsr.errors import one_line
from jdsr.io import locks
from jdsr.train import compiling, phases, writer as writer_lib
from jdsr.evaluation import metrics as image_metrics
from jdsr.io import pixels
from jdsr.data import sources
from jdsr.nn import xla_options
from jdsr.nn.model import JDSR, abstract_model, build_model


LOCK = locks.NAME  # in the workdir while a run trains there


class TrainingError(RuntimeError):
  """A run that cannot go on: a non-finite loss, or a checkpoint that does not fit the config."""


class Stopped(Exception):
  """A run stopped by SIGTERM or SIGINT (Ctrl-C), its checkpoint saved: running it again resumes."""

  def __init__(self, signal_name: str, step: int, checkpoint: pathlib.Path | None):
    self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
    where = f'checkpoint {checkpoint} saved' if checkpoint else 'no checkpoint yet'
    super().__init__(f'stopped by {signal_name} at step {step}, {where}; run the same command '
                     'again to resume')


TrainMetrics = metrics.Collection.create(loss=metrics.Average.from_output('loss'))


def initial_model(config: ml_collections.ConfigDict) -> JDSR:
  """The model a phase starts from: ``config.init_from``, or fresh weights (seed ``config.seed``).

  ``init_from`` takes whatever ``jdsr.load`` takes: an official ``.pth``, a jdsr
  checkpoint, or the workdir of an earlier phase (its best checkpoint, else its
  latest).
  """
  if not config.init_from:
    return build_model(config.model, config.seed)
  return checkpoints.load(config.init_from, config.model)


# -- validation -------------------------------------------------------------------


def _panel(image: np.ndarray, height: int) -> np.ndarray:
  """An image nearest-upscaled to `height` rows (for image summaries)."""
  factor = height // image.shape[0]
  return np.repeat(np.repeat(image, factor, 0), factor, 1) if factor > 1 else image


def validate(predict: Callable, params: nnx.State, items: list[dict], phase: phases.Phase,
             num_images: int) -> tuple[dict, dict]:
  """(scalars, images): mean PSNR/SSIM of the output on `items`, and input | output | target panels."""
  psnrs, ssims, images = [], [], {}
  for i, item in enumerate(items):
    out = np.asarray(predict(params, pixels.to_float(item['blur_lr'])[None]))[0]
    if not np.isfinite(out).all():
      raise TrainingError(f"the model's output for validation image {item['id']} is NaN or inf "
                          '(the parameters have diverged)')
    pred, target = pixels.quantize(out), pixels.quantize(item[phase.target])
    psnrs.append(image_metrics.psnr(pred, target))
    ssims.append(image_metrics.ssim(pred, target))
    if i < num_images:
      h = target.shape[0]
      row = [_panel(pixels.quantize(item['blur_lr']), h), pred, target]
      images[f'val/{i}_{item["id"]}'] = np.concatenate(row, axis=1)[None]
  return {'val/psnr': float(np.mean(psnrs)), 'val/ssim': float(np.mean(ssims))}, images


# -- the loop ---------------------------------------------------------------------


@dataclasses.dataclass
class Result:
  """What a run ends with: the final state, the last validation scores, the workdir."""
  state: phases.TrainState
  model: JDSR
  scalars: dict
  workdir: pathlib.Path


def _on_device(batches: Iterator[dict], sharding: NamedSharding, keys: tuple[str, ...],
               multiple: int) -> Iterator[tuple[dict, dict]]:
  """(device batch, host batch) pairs: ``keys`` of each host batch, sharded over the devices.

  Each host batch is padded to a multiple of ``multiple`` samples (its devices
  times the microbatches) with copies of its first sample, and gets a
  'weight': 1 for its samples, 0 for the padding. The loop asks for batch i + 1
  right after dispatching step i, which JAX runs asynchronously: the batch is
  read and copied to the devices while the step computes.
  """
  for batch in batches:
    n = len(batch[keys[0]])
    pad = -n % multiple
    padded = {key: np.concatenate([batch[key], np.repeat(batch[key][:1], pad, axis=0)])
              for key in keys}
    padded['weight'] = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    yield {key: jax.make_array_from_process_local_data(sharding, value)
           for key, value in padded.items()}, batch


def _next_batch(data: Iterator) -> Any:
  """The next batch; a data error (an unreadable file, an image too small) as one TrainingError."""
  try:
    return next(data)
  except (ValueError, TypeError, OSError) as e:
    raise TrainingError(f'data error: {one_line(e)}') from None


def _mesh() -> jax.sharding.Mesh:
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def _check_config(config: ml_collections.ConfigDict) -> None:
  """ValueError (one line) for a config that cannot train."""
  phases.get(config.phase)
  positive = {'batch_size': config.batch_size, 'num_train_steps': config.num_train_steps,
              'microbatches': config.microbatches,
              'learning_rate': config.learning_rate, 'log_every': config.log_every,
              'eval_every': config.eval_every, 'checkpoint_every': config.checkpoint_every,
              'keep_checkpoints': config.keep_checkpoints, 'data.lr_size': config.data.lr_size}
  if config.get('sr_learning_rate') is not None:
    positive['sr_learning_rate'] = config.sr_learning_rate
  for name, value in positive.items():
    if not value > 0:
      raise ValueError(f'config.{name}={value} must be positive')
  if not 0 <= config.min_learning_rate:
    raise ValueError(f'config.min_learning_rate={config.min_learning_rate} must not be negative')
  n = jax.process_count()
  if config.batch_size % n:
    raise ValueError(f'config.batch_size={config.batch_size} is not a multiple of the '
                     f'{n} processes')
  if config.data.lr_size % 8:
    raise ValueError(f'config.data.lr_size={config.data.lr_size} must be a multiple of 8')


@contextlib.contextmanager
def workdir_lock(workdir: pathlib.Path) -> Iterator[locks.Lease | None]:
  """Hold ``WORKDIR/.lock`` (``jdsr.io.locks``: a lease with a heartbeat) while a run trains there.

  A second live run in the same workdir is refused with a TrainingError; the
  lock of a run that is gone is taken over. Yields the ``Lease`` (the loop
  checks it at every step and before every save: a run whose lock was removed or
  taken stops with a TrainingError, writing nothing more). In a multi-host run,
  process 0 holds it for all (the others get None).
  """
  if jax.process_index() > 0:
    yield None
    return
  try:
    with locks.hold(workdir, what='run') as lease:
      yield lease
  except locks.LockError as e:
    raise TrainingError(str(e)) from None


def remove_stale_tmp(directory: pathlib.Path, older_than: float = locks.LEASE) -> None:
  """Removes orbax's temporary checkpoints in ``directory`` left by a run that is gone.

  Only those not written for ``older_than`` seconds: one that a live run is
  still writing (a run whose lock was removed under it) is left alone. (orbax's
  own start-up clean-up removes them all.)
  """
  now = time.time()
  for tmp in directory.glob('*.orbax-checkpoint-tmp*'):
    try:
      newest = max((p.lstat().st_mtime for p in [tmp, *tmp.rglob('*')]), default=0.0)
    except OSError:
      continue
    if now - newest > older_than:
      logging.warning('removing %s, a checkpoint left unfinished by an earlier run', tmp)
      shutil.rmtree(tmp, ignore_errors=True)


class _Damaged(Exception):
  """A checkpoint that cannot be resumed from: unreadable, or holding NaN or inf values."""


def _resume(manager: ocp.CheckpointManager, abstract: phases.TrainState,
            config: ml_collections.ConfigDict, workdir: pathlib.Path
            ) -> tuple[phases.TrainState, dict]:
  """The state of the latest good checkpoint and its 'train' record, if it continues the run.

  Each checkpoint is checked as ``jdsr.load`` checks parameters (every value
  finite). A damaged one (unreadable, or NaN or inf) is moved aside to
  ``checkpoints/damaged-N``, with a warning, and the one before it is tried; if
  none is good, a TrainingError names them.
  """
  damaged = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      state, train = _resume_step(manager, step, abstract, config, workdir)
    except _Damaged as e:
      damaged.append(str(e))
      aside = workdir / 'checkpoints' / f'damaged-{step}'
      os.replace(workdir / 'checkpoints' / str(step), aside)
      manager.reload()
      continue
    if damaged:
      logging.warning('%s: resuming from step %d instead (the damaged ones are in '
                      'checkpoints/damaged-*)', '; '.join(damaged), step)
    return state, train
  raise TrainingError(f'no checkpoint can be resumed from: {"; ".join(damaged)}; the damaged '
                      'ones are in checkpoints/damaged-*')


def _resume_step(manager: ocp.CheckpointManager, step: int, abstract: phases.TrainState,
                 config: ml_collections.ConfigDict, workdir: pathlib.Path
                 ) -> tuple[phases.TrainState, dict]:
  """The state of checkpoint ``step``; ``_Damaged`` if it cannot be read or is not finite."""
  where = workdir / 'checkpoints' / str(step)
  try:
    with checkpoints.quiet_logs():
      saved = manager.restore(step, args=checkpoints.restore_args(model_config=True, train=True))
  except Exception as e:  # noqa: BLE001 - orbax raises many kinds for a damaged checkpoint
    raise _Damaged(f'{where} cannot be read ({_what_is_missing(where, e)})') from None
  for key in ('phase', 'seed', 'batch_size'):
    if saved.train[key] != config[key]:
      raise TrainingError(
          f'{workdir} holds a run with {key}={saved.train[key]!r}, the config says '
          f'{config[key]!r}: resuming would not continue that run; use another --workdir')
  checkpoints.check_fits(config_lib.model_config(**saved.model_config), config.model, where)
  try:
    with checkpoints.quiet_logs():
      restored = manager.restore(step, args=checkpoints.restore_args(
          params=abstract.params, opt_state=abstract.opt_state))
  except Exception as e:  # noqa: BLE001
    raise _Damaged(f'{where} cannot be read ({_what_is_missing(where, e)})') from None
  bad = [jax.tree_util.keystr(path) for path, leaf in
         jax.tree_util.tree_leaves_with_path((restored.params, restored.opt_state))
         if jnp.issubdtype(leaf.dtype, jnp.inexact) and not bool(jnp.isfinite(leaf).all())]
  if bad:
    raise _Damaged(f'{where} holds NaN or inf values ({len(bad)} arrays, such as {bad[0]})')
  logging.info('Resuming from step %d', step)
  return phases.TrainState(step=jnp.asarray(saved.train['step'], jnp.int32),
                           params=restored.params, opt_state=restored.opt_state), saved.train


def _what_is_missing(where: pathlib.Path, error: BaseException) -> str:
  """What a checkpoint that cannot be read lacks, in a few words (orbax's own text is not)."""
  for part in ('params', 'opt_state', 'train', 'model_config'):
    folder = where / part
    if not folder.exists():
      return f'its {part}/ is missing'
    if folder.is_dir() and (folder / 'manifest.ocdbt').exists():
      listed = {p.name for p in (folder / 'ocdbt.process_0' / 'd').glob('*')}
      manifest = (folder / 'manifest.ocdbt').read_bytes()
      absent = sorted({name for name in _data_files(manifest) if name not in listed})
      if absent:
        return f'{part}/ocdbt.process_0/d/{absent[0]} is missing' + (
            f', and {len(absent) - 1} more' if len(absent) > 1 else '')
  return one_line(error, kind=True)[:200]


def _data_files(manifest: bytes) -> set[str]:
  """The names of the data files an OCDBT manifest refers to (32 hex digits each)."""
  return {m.decode() for m in re.findall(rb'[0-9a-f]{32}', manifest)}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       batches: Callable[[int], Iterator[dict]] | None = None) -> Result:
  """Train one phase into `workdir`, resuming from its latest checkpoint if there is one.

  ``batches(start)``: host-local batches from element `start` on (dicts of
  NumPy 'blur_lr', 'sharp_lr', 'sharp_hr'); by default the grain pipeline
  over ``jdsr.data.sources.train_source(config)``. While it runs, the run holds
  ``workdir/.lock`` (``workdir_lock``).
  """
  _check_config(config)
  workdir = pathlib.Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  # SIGTERM and SIGINT are caught from before the lock is taken: one that comes while the run
  # starts (compiling, say) stops it before its first step, in one line, the lock released.
  signals = _Signals(enabled=jax.process_count() == 1)
  try:
    with workdir_lock(workdir) as lease:
      return _train(config, workdir, batches, signals, lease)
  finally:
    signals.restore()


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path,
           batches: Callable[[int], Iterator[dict]] | None, signals: _Signals,
           lease: locks.Lease | None) -> Result:
  # Each manager its own barrier names: with several processes, the periodic and the best
  # checkpoint of one step are saved at once, and orbax names its barriers by step.
  sync = lambda prefix: ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)
  if jax.process_index() == 0:
    for folder in ('checkpoints', 'best'):
      if (workdir / folder).is_dir():
        remove_stale_tmp(workdir / folder)
  manager = ocp.CheckpointManager(workdir / 'checkpoints', options=ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints, create=True,
      multiprocessing_options=sync('checkpoints')))
  best = ocp.CheckpointManager(
      workdir / 'best', options=ocp.CheckpointManagerOptions(
          max_to_keep=1, create=True, best_fn=lambda m: m['val/psnr'], best_mode='max',
          multiprocessing_options=sync('best')))
  try:
    return _run(config, workdir, batches, manager, best, signals, lease)
  finally:  # also when the run stops early: orbax's threads end before the interpreter does
    manager.close()
    best.close()


def _run(config: ml_collections.ConfigDict, workdir: pathlib.Path,
         batches: Callable[[int], Iterator[dict]] | None, manager: ocp.CheckpointManager,
         best: ocp.CheckpointManager, signals: _Signals, lease: locks.Lease | None) -> Result:
  from jdsr.data import pipeline

  phase = phases.get(config.phase)
  mesh = _mesh()
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  per_host = config.batch_size // jax.process_count()
  flat_config = {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                 for k, v in _flat(config).items()}
  # The loader's state is saved with each checkpoint (the batches this host has consumed), and
  # data_position too (for inspection: elements read per host); the config, to compare.
  train_info = lambda step: {'step': step, 'phase': phase.name, 'seed': config.seed,
                             'batch_size': config.batch_size, 'data_position': step * per_host,
                             'data_state': _loader_state(loader, step), 'config': flat_config}
  resuming = manager.latest_step() is not None
  # A resumed run takes everything from its checkpoint: init_from is not read.
  model = abstract_model(config.model) if resuming else initial_model(config)
  model_config = dict(model.config)
  graphdef, params = nnx.split(model, nnx.Param)

  tx = phases.make_optimizer(config)
  init = jax.jit(lambda p: phases.init_state(p, phase, tx), out_shardings=replicated)
  step_fn = compiling.compile_on_first_call(jax.jit(
      phases.make_train_step(graphdef, phase, tx, phases.use_remat(config.remat),
                             config.microbatches),
      in_shardings=(replicated, sharded), out_shardings=(replicated, replicated),
      donate_argnums=0))
  predict_fn = jax.jit(lambda p, x: phase.predict(nnx.merge(graphdef, p), x),
                       compiler_options=xla_options.compiler_options() or None)
  # The image goes in replicated, as the parameters are: one global array on every host.
  predict = lambda p, x: predict_fn(p, jax.device_put(x, replicated))
  if resuming:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                            jax.eval_shape(init, params))
    state, saved = _resume(manager, abstract, config, workdir)
    saved_data_state = saved.get('data_state')
    _warn_changes(saved.get('config'), flat_config, workdir)
  else:
    state, saved_data_state = init(params), None
  start = int(state.step)
  val_items = sources.validation_set(config, ('blur_lr', phase.target))

  if batches is None:
    source = sources.train_source(config)
    loader = iter(pipeline.train_batches(
        source, batch_size=per_host, seed=config.seed, lr_size=config.data.lr_size,
        scale=config.model.scale, shard=(jax.process_index(), jax.process_count()),
        keys=phase.batch_keys, threads=config.data.threads, workers=config.data.workers))
    loader.set_state(saved_data_state or {'next_index': start})
  else:
    loader = iter(batches(start * per_host))
  data = _on_device(loader, sharded, phase.batch_keys,
                    jax.local_device_count() * config.microbatches)

  writer = writer_lib.Writer(workdir, enabled=jax.process_index() == 0)
  if start == 0:
    writer.write_hparams(_flat(config))
  report = writer_lib.Progress(config.num_train_steps, writer)
  schedules = {group: phases.learning_rates(config)[group] for group in phase.trained}
  train_metrics, scalars, step = None, {}, start

  # The image the model must still restore before anything is saved (else a training crop).
  probe = pixels.to_float(val_items[0]['blur_lr'])[None] if val_items else None
  pending = []  # (step, outputs) not yet read back from the device

  def check(pending: list) -> None:
    """Stop at the first step whose loss or update was not finite."""
    for step, out in jax.device_get(pending):
      if not out['finite']:
        raise stop(f'the loss is {out["loss"]} at step {step}, the parameters were not updated'
                   if not np.isfinite(out['loss']) else
                   f'at step {step} the update would make parameters NaN or inf; not applied')

  def stop(problem: str) -> TrainingError:
    last = manager.latest_step()
    return TrainingError(
        f'{problem}: stopped. The latest checkpoint is '
        f'{workdir / "checkpoints" / str(last) if last else "none"} (checked when it is resumed). '
        'Lower the learning rate or check the data.')

  def still_ours() -> None:
    """A TrainingError if the workdir's lock was removed or taken by another run."""
    try:
      if lease is not None:
        lease.check()
    except locks.LockError as e:
      raise TrainingError(str(e)) from None

  def save(step: int) -> None:
    """A checkpoint of ``state``, unless the model's output has become NaN or inf."""
    still_ours()
    out = np.asarray(predict(state.params, probe))
    if not np.isfinite(out).all():
      raise stop(f'at step {step} the model outputs NaN or inf (the parameters have diverged); '
                 'not saved')
    _written(manager, step, lambda: manager.save(step, args=checkpoints.save_args(
        state.params, model_config, opt_state=state.opt_state, train=train_info(step))),
        (state.params, state.opt_state))

  if signals.received:  # while the run was starting: nothing new to save
    latest = manager.latest_step()
    raise Stopped(signals.received, start,
                  workdir / 'checkpoints' / str(latest) if latest is not None else None)
  try:
    for step in range(start + 1, config.num_train_steps + 1):
      if lease is not None and lease.lost.is_set():
        still_ours()
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        batch, host_batch = _next_batch(data)
        if probe is None:
          probe = host_batch['blur_lr'][:1]
        state, out = step_fn(state, batch)
      # Nothing here waits for the device: the outcome is read at the next log, validation or
      # checkpoint step (a non-finite step changed nothing, and nothing is saved after it).
      pending.append((step, out))
      update = TrainMetrics.single_from_model_output(loss=out['loss'])
      train_metrics = update if train_metrics is None else train_metrics.merge(update)
      report(step)
      last_step = step == config.num_train_steps
      if last_step or not (step % config.log_every and step % config.eval_every
                           and step % config.checkpoint_every):
        check(pending)
        pending = []
      if step % config.log_every == 0 or last_step:
        logged = {f'train/{k}': v for k, v in train_metrics.compute().items()}
        logged.update({f'train/lr_{group}': float(schedule(step - 1))
                       for group, schedule in schedules.items()})
        writer.write_scalars(step, logged)
        train_metrics = None
      if val_items and (step % config.eval_every == 0 or last_step):
        with report.timed('validate'):
          try:
            scalars, images = validate(predict, state.params, val_items, phase,
                                       config.data.val_images)
          except TrainingError as e:
            raise stop(f'at step {step} {e}; not saved') from None
        writer.write_scalars(step, scalars)
        writer.write_images(step, images)
        _written(best, step, lambda: best.save(
            step, args=checkpoints.save_args(state.params, model_config), metrics=scalars),
            (state.params,))
      if step % config.checkpoint_every == 0 or last_step:
        save(step)
      if not last_step and (signals.received or manager.reached_preemption(step)):
        check(pending)
        if step > (manager.latest_step() or 0):
          logging.warning('%s: saving step %d before stopping', signals.received or 'preempted',
                          step)
          save(step)
        raise Stopped(signals.received or 'preemption', step,
                      workdir / 'checkpoints' / str(manager.latest_step()))
  except KeyboardInterrupt:
    check(pending)
    if int(state.step) > (manager.latest_step() or 0) and probe is not None:
      logging.warning('Interrupted: saving step %d before stopping', int(state.step))
      save(int(state.step))
    raise
  finally:
    data = None
    manager.wait_until_finished()
    best.wait_until_finished()
    writer.close()
  model = nnx.merge(graphdef, jax.device_get(state.params))
  return Result(state=state, model=model, scalars=scalars, workdir=workdir)


def _room(directory: pathlib.Path, trees: tuple, step: int) -> None:
  """A TrainingError, before anything is written, if ``directory`` has no room for a checkpoint.

  A checkpoint takes the trees' bytes plus orbax's metadata: twice the bytes and 2 MiB are
  asked for, so that a disk that fills up is found here, not halfway through a write.
  """
  need = 2 * sum(x.nbytes for tree in trees for x in jax.tree.leaves(tree)) + 2 * 2**20
  directory.mkdir(parents=True, exist_ok=True)
  free = shutil.disk_usage(directory).free
  if free < need:
    raise TrainingError(f'no room for checkpoint {step} in {directory}: it needs about '
                        f'{need / 2**20:,.0f} MiB, {free / 2**20:,.1f} MiB are free; the '
                        'checkpoints before it are intact')


def _written(manager: ocp.CheckpointManager, step: int, save: Callable[[], Any],
             trees: tuple = ()) -> None:
  """Saves, waits until written, and turns a failure (a full disk) into one TrainingError."""
  _room(pathlib.Path(manager.directory), trees, step)
  try:
    save()
    manager.wait_until_finished()
  except Exception as e:  # noqa: BLE001 - orbax raises many kinds, from its writer threads too
    raise TrainingError(f'cannot write checkpoint {step} in {manager.directory} '
                        f'({one_line(e, kind=True)}); the checkpoints before it are intact') from e


def _warn_changes(saved: dict | None, now: dict, workdir: pathlib.Path) -> None:
  """One warning listing the config fields a resumed run changes (its learning rate, say)."""
  if not saved:
    return
  changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
  if changed:
    logging.warning('%s: resuming with %d changed config fields: %s', workdir, len(changed),
                    ', '.join(f'{k} {saved.get(k)!r} -> {now.get(k)!r}' for k in changed))


class _Signals:
  """SIGTERM and SIGINT ask the loop to stop after the current step (a second SIGINT: now).

  Schedulers and ``docker stop`` send SIGTERM before they kill. With several
  processes, JAX's preemption service handles SIGTERM instead, and every process
  stops at the step that ``CheckpointManager.reached_preemption`` agrees on.
  """

  def __init__(self, enabled: bool):
    self.received, self._previous = None, {}
    if not enabled or threading.current_thread() is not threading.main_thread():
      return
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum, frame) -> None:
    name = signal.Signals(signum).name
    if self.received == 'SIGINT' and name == 'SIGINT':
      raise KeyboardInterrupt
    logging.warning('%s: stopping after this step (a checkpoint is saved first)', name)
    self.received = self.received or name

  def restore(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}


def _loader_state(loader, step: int) -> dict:
  """The input pipeline's state after ``step`` batches: its own, or the batch count."""
  return loader.get_state() if hasattr(loader, 'get_state') else {'next_index': step}


def _flat(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as flat 'a.b' keys with scalar values (for hparams)."""
  out = {}

  def walk(prefix, value):
    if isinstance(value, dict):
      for k, v in value.items():
        walk(f'{prefix}.{k}' if prefix else k, v)
    else:
      out[prefix] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)

  walk('', config.to_dict())
  return out
