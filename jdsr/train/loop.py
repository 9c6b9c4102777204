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

import dataclasses
import json
import logging
import os
import pathlib
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from clu import metrics
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from jdsr import checkpoints
from jdsr.checkpoints import training as guard_lib
from jdsr.errors import TrainingError, one_line
from jdsr.io import locks
from jdsr.train import compiling, phases, signals as signals_lib, writer as writer_lib
from jdsr.train.signals import Stopped
from jdsr.train.validation import validate
from jdsr.io import pixels
from jdsr.data import sources
from jdsr.nn.model import JDSR, abstract_model, build_model


LOCK = locks.NAME  # in the workdir while a run trains there


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
  signals = signals_lib.Signals(enabled=jax.process_count() == 1)
  try:
    with guard_lib.lock(workdir) as lease:
      return _train(config, workdir, batches, signals, lease)
  finally:
    signals.restore()


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path,
           batches: Callable[[int], Iterator[dict]] | None, signals: signals_lib.Signals,
           lease: locks.Lease | None) -> Result:
  with guard_lib.RunGuard(workdir, keep=config.keep_checkpoints, lease=lease) as guard:
    return _run(config, workdir, batches, guard, signals)


def _run(config: ml_collections.ConfigDict, workdir: pathlib.Path,
         batches: Callable[[int], Iterator[dict]] | None, guard: guard_lib.RunGuard,
         signals: signals_lib.Signals) -> Result:
  from jdsr.data import pipeline

  phase = phases.get(config.phase)
  mesh = compiling.mesh()
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  per_host = config.batch_size // jax.process_count()
  flat_config = {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                 for k, v in _flat(config).items()}
  # The loader's state is saved with each checkpoint (the batches this host has consumed), and
  # data_position too (for inspection: elements read per host); the config, to compare.
  train_info = lambda step: {'step': step, 'phase': phase.name, 'seed': config.seed,
                             'batch_size': config.batch_size, 'data_position': step * per_host,
                             'data_state': _loader_state(loader, step), 'config': flat_config}
  resuming = guard.latest_step() is not None
  # A resumed run takes everything from its checkpoint: init_from is not read.
  model = abstract_model(config.model) if resuming else initial_model(config)
  model_config = dict(model.config)
  graphdef, params = nnx.split(model, nnx.Param)
  run = compiling.programs(model, phase.name, (config.adam_b1, config.adam_b2, config.adam_eps),
                 phases.use_remat(config.remat), config.microbatches, mesh)
  predict = run.predict
  if resuming:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                            jax.eval_shape(run.init, params))
    params, opt_state, saved = guard.resume(
        abstract.params, abstract.opt_state,
        {key: config[key] for key in ('phase', 'seed', 'batch_size')}, config.model)
    state = phases.TrainState(step=jnp.asarray(saved['step'], jnp.int32), params=params,
                              opt_state=opt_state)
    saved_data_state = saved.get('data_state')
    _warn_changes(saved.get('config'), flat_config, workdir)
  else:
    state, saved_data_state = run.init(params), None
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
  rates = lambda step: jax.device_put(phases.rates_at(schedules, step), replicated)
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
    return TrainingError(
        f'{problem}: stopped. The latest checkpoint is {guard.latest_path() or "none"} '
        '(checked when it is resumed). Lower the learning rate or check the data.')

  def save(step: int) -> None:
    """A checkpoint of ``state``, unless the model's output has become NaN or inf."""
    guard.still_ours()
    out = np.asarray(predict(state.params, probe))
    if not np.isfinite(out).all():
      raise stop(f'at step {step} the model outputs NaN or inf (the parameters have diverged); '
                 'not saved')
    guard.save(step, state.params, model_config, opt_state=state.opt_state,
               train=train_info(step))

  if signals.received:  # while the run was starting: nothing new to save
    raise Stopped(signals.received, start, guard.latest_path())
  if start < config.num_train_steps:
    logging.info('step %d of %d: compiling the training step first (a minute or more on a CPU, '
                 'seconds from the compilation cache)', start + 1, config.num_train_steps)
  compiled_at = time.monotonic()
  try:
    for step in range(start + 1, config.num_train_steps + 1):
      if guard.lease is not None and guard.lease.lost.is_set():
        guard.still_ours()
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        batch, host_batch = _next_batch(data)
        if probe is None:
          probe = host_batch['blur_lr'][:1]
        state, out = run.step(state, batch, rates(step))
      if step == start + 1:
        logging.info('compiled the training step in %.0f s: training',
                     time.monotonic() - compiled_at)
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
        logged.update({f'train/lr_{group}': float(rate)
                       for group, rate in phases.rates_at(schedules, step).items()})
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
        guard.save_best(step, state.params, model_config, scalars)
      if step % config.checkpoint_every == 0 or last_step:
        save(step)
      if not last_step and (signals.received or guard.reached_preemption(step)):
        check(pending)
        if step > (guard.latest_step() or 0):
          logging.warning('%s: saving step %d before stopping', signals.received or 'preempted',
                          step)
          save(step)
        raise Stopped(signals.received or 'preemption', step,
                      guard.latest_path())
  except KeyboardInterrupt:
    check(pending)
    if int(state.step) > (guard.latest_step() or 0) and probe is not None:
      logging.warning('Interrupted: saving step %d before stopping', int(state.step))
      save(int(state.step))
    raise
  finally:
    data = None
    guard.wait()
    writer.close()
  model = nnx.merge(graphdef, jax.device_get(state.params))
  return Result(state=state, model=model, scalars=scalars, workdir=workdir)


def _warn_changes(saved: dict | None, now: dict, workdir: pathlib.Path) -> None:
  """One warning listing the config fields a resumed run changes (its learning rate, say)."""
  if not saved:
    return
  changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
  if changed:
    logging.warning('%s: resuming with %d changed config fields: %s', workdir, len(changed),
                    ', '.join(f'{k} {saved.get(k)!r} -> {now.get(k)!r}' for k in changed))


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
