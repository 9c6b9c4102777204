"""Training in three phases: deblur; super-resolve with the deblurring module frozen; joint.

``train_and_evaluate(config, workdir)`` runs one phase (``config.phase``):

* ``'deblur'`` (phase 1): the deblurring module alone; the super-resolution
  part is not even run. Loss: ``losses.deblur_loss`` against the sharp LR.
* ``'sr'`` (phase 2): the transformation and super-resolution module; the
  deblurring module, the shared PReLU included, is frozen and gradients stop
  at its output. Loss: ``losses.sr_loss`` against the sharp HR.
* ``'joint'`` (phase 3, or from scratch): everything, with separate learning
  rates for the deblur and SR groups. Loss: ``losses.joint_loss``.

The parameter groups come from the parameter paths (``param_labels``): the
``SRNet_*`` modules are the SR group, everything else (the shared PReLU
``act`` included) the deblur group. A frozen group gets ``optax.set_to_zero``
through ``optax.partition``: no update and no optimizer state, and its
parameters are not even differentiated (``stop_gradient``).

The state (parameters, Adam moments, step) lives replicated on a
``jax.sharding.Mesh`` with one axis, 'data'; every batch is sharded over it.
Training is deterministic: the model has no randomness, and the data
pipeline is a pure function of (config.seed, elements consumed), so the step
number alone fixes the data-iterator position of a resumed run.

Files under ``workdir``:

* ``checkpoints/<step>/``: orbax checkpoints (periodic and final) with
  ``params`` and ``model_config`` (so ``eval.py --checkpoint`` and
  ``jdsr.load_checkpoint`` read them), ``opt_state`` and ``train`` (step,
  seed, batch size, data position). Written to a temporary directory and
  renamed when complete, so a run killed while saving leaves the last
  complete checkpoint usable; training resumes from the latest.
* ``best/<step>/``: the checkpoint with the best validation PSNR so far.
* TensorBoard event files (``tensorboard --logdir workdir``): train loss,
  learning rates, steps/s, validation PSNR/SSIM and image summaries
  (input | output | target).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
from typing import Any, Callable, Iterator

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from clu import metric_writers, metrics, periodic_actions
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from jdsr import api, convert, losses, metrics as image_metrics
from jdsr.model import JDSR, remat_blocks

PHASES = ('deblur', 'sr', 'joint')
FROZEN = 'frozen'


class TrainingError(RuntimeError):
  """A run that cannot go on: a non-finite loss, or a checkpoint that does not fit the config."""


# -- parameters and optimizer ------------------------------------------------------


def param_group(path: tuple) -> str:
  """'sr' for the transformation and super-resolution module (``SRNet_*``), else 'deblur'."""
  first = path[0]
  name = str(getattr(first, 'key', getattr(first, 'name', first)))
  return 'sr' if name.startswith('SRNet_') else 'deblur'


def param_labels(params: nnx.State, phase: str) -> nnx.State:
  """Each parameter's optax label in `phase`: 'deblur', 'sr' or 'frozen'."""
  if phase not in PHASES:
    raise ValueError(f'phase must be one of {PHASES}, got {phase!r}')
  trained = {'deblur': ('deblur',), 'sr': ('sr',), 'joint': ('deblur', 'sr')}[phase]

  def label(path, _):
    group = param_group(path)
    return group if group in trained else FROZEN

  return jax.tree_util.tree_map_with_path(label, params)


def learning_rates(config: ml_collections.ConfigDict) -> dict[str, optax.Schedule]:
  """Per group: cosine annealing from its initial rate to ``config.min_learning_rate``."""
  out = {}
  for group, lr in (('deblur', config.learning_rate),
                    ('sr', config.get('sr_learning_rate') or config.learning_rate)):
    out[group] = optax.cosine_decay_schedule(lr, max(config.num_train_steps, 1),
                                             alpha=min(config.min_learning_rate / lr, 1.0))
  return out


def make_optimizer(config: ml_collections.ConfigDict, labels: nnx.State
                   ) -> optax.GradientTransformation:
  """Adam per trained group with its schedule; ``set_to_zero`` (no state) for the frozen."""
  adam = lambda lr: optax.adam(lr, b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)
  transforms = {group: adam(lr) for group, lr in learning_rates(config).items()}
  transforms[FROZEN] = optax.set_to_zero()
  return optax.partition(transforms, labels)


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState


# -- the step ---------------------------------------------------------------------


def compute_loss(model: JDSR, batch: dict, phase: str) -> tuple[jax.Array, jax.Array]:
  """(loss, output) of `phase` on a batch: output is the stage-3 image (phase 1) or the SR image."""
  x = batch['blur_lr']
  if phase == 'deblur':
    images, _ = model.deblur(x)
    return losses.deblur_loss(images, batch['sharp_lr']), images[0]
  images, sr = model(x)
  if phase == 'sr':
    return losses.sr_loss(sr, batch['sharp_hr']), sr
  return losses.joint_loss(images, sr, batch['sharp_lr'], batch['sharp_hr']), sr


def make_train_step(graphdef: nnx.GraphDef, labels: nnx.State, tx: optax.GradientTransformation,
                    phase: str, remat: bool = False) -> Callable[[TrainState, dict], tuple]:
  """``step(state, batch) -> (state, {'loss'})``, pure (to be jit-compiled).

  Frozen parameters go in through ``stop_gradient``, so nothing is
  differentiated for them, and come out untouched (bitwise). A non-finite loss
  changes nothing: the state returned is the state given, step included.
  """

  def loss_fn(params, batch):
    params = jax.tree.map(lambda p, lab: jax.lax.stop_gradient(p) if lab == FROZEN else p,
                          params, labels)
    with remat_blocks(remat):
      loss, _ = compute_loss(nnx.merge(graphdef, params), batch, phase)
    return loss

  def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    loss, grads = jax.value_and_grad(loss_fn)(state.params, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, u, lab: p if lab == FROZEN else p + u,
                          state.params, updates, labels)
    new = TrainState(step=state.step + 1, params=params, opt_state=opt_state)
    finite = jnp.isfinite(loss)
    new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
    return new, {'loss': loss}

  return step


TrainMetrics = metrics.Collection.create(loss=metrics.Average.from_output('loss'))


# -- data -------------------------------------------------------------------------


def _degradation(config: ml_collections.ConfigDict):
  from jdsr.data import degrade
  d = config.data.degradation
  return degrade.Degradation(scale=config.model.scale, kernel_size=d.kernel_size,
                             length=tuple(d.length), noise=d.noise)


def _folders(spec: str) -> list[str]:
  """'a,b' → ['a', 'b'] (config.data.photos_dir may name several folders)."""
  folders = [f.strip() for f in spec.split(',') if f.strip()]
  if not folders:
    raise ValueError("config.data.source is 'photos' but no folder is set "
                     '(config.data.photos_dir, config.data.val_photos_dir)')
  return folders


def train_source(config: ml_collections.ConfigDict):
  """The training examples of ``config.data`` as a random-access ``pipeline.Source``."""
  from jdsr.data import pipeline, reds_tfds
  data = config.data
  if data.source == 'reds':
    return reds_tfds.train_source(data.reds_manual_dir, data.reds_data_dir)
  if data.source == 'photos':
    return pipeline.PhotoSource(_folders(data.photos_dir), _degradation(config), config.seed)
  raise ValueError(f"config.data.source must be 'reds' or 'photos', got {data.source!r}")


def _center_crop(image: np.ndarray, h: int, w: int) -> np.ndarray:
  top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
  return image[top:top + h, left:left + w]


def validation_set(config: ml_collections.ConfigDict) -> list[dict]:
  """``config.data.val_count`` validation examples as float32 arrays, all cropped to one size.

  The LR images are centre-cropped to ``config.data.val_lr_size``² (or, if 0,
  to the largest multiple of 8 that every example has), the HR ones to the
  same region. REDS validation has no sharp LR: it is the sharp HR downscaled
  with ``degrade.bicubic_down`` (the phase-1 target is only a monitor here).
  """
  from jdsr.data import degrade, pipeline, reds_tfds
  data, scale = config.data, config.model.scale
  if not data.val_count:
    return []
  if data.source == 'reds':
    ds = reds_tfds.load(data.val_split, data.reds_manual_dir, data.reds_data_dir)
    raw = []
    for example in ds.take(data.val_count).as_numpy_iterator():
      hr = example['sharp_hr'].astype(np.float32) / 255
      raw.append({'id': example['id'].decode(), 'blur_lr': example['blur_lr'].astype(np.float32) / 255,
                  'sharp_hr': hr, 'sharp_lr': degrade.bicubic_down(hr, scale)})
  else:
    source = pipeline.PhotoSource(_folders(data.val_photos_dir), _degradation(config),
                                  config.seed + 1)
    raw = [source.load(i, 0) for i in range(min(data.val_count, len(source)))]
  size = data.val_lr_size
  h = size or min(e['blur_lr'].shape[0] for e in raw) // 8 * 8
  w = size or min(e['blur_lr'].shape[1] for e in raw) // 8 * 8
  out = []
  for e in raw:
    if e['blur_lr'].shape[0] < h or e['blur_lr'].shape[1] < w:
      raise ValueError(f"validation image {e['id']} is smaller than the {h}x{w} crop "
                       '(config.data.val_lr_size)')
    out.append({'id': str(e['id']),
                'blur_lr': _center_crop(np.asarray(e['blur_lr'], np.float32), h, w),
                'sharp_lr': _center_crop(np.asarray(e['sharp_lr'], np.float32), h, w),
                'sharp_hr': _center_crop(np.asarray(e['sharp_hr'], np.float32), scale * h, scale * w)})
  return out


# -- initialisation and checkpoints -----------------------------------------------


def initial_model(config: ml_collections.ConfigDict) -> JDSR:
  """The model a phase starts from (``config.init_from``).

  '' : fresh weights (seed ``config.seed``); a ``.pth`` file: official
  weights; an orbax checkpoint directory (one with ``params/``); or the
  workdir of an earlier phase: its best checkpoint if it has one, else its
  latest.
  """
  source = config.init_from
  if not source:
    return api.build_model(config.model, config.seed)
  path = pathlib.Path(source)
  if path.suffix == '.pth':
    return convert.load_pytorch(path, config.model)
  if (path / 'params').is_dir():
    return convert.load_checkpoint(path, config.model)
  for sub in ('best', 'checkpoints'):
    steps = ocp.utils.checkpoint_steps(path / sub) if (path / sub).is_dir() else []
    if steps:
      logging.info('Starting from %s', path / sub / str(max(steps)))
      return convert.load_checkpoint(path / sub / str(max(steps)), config.model)
  raise FileNotFoundError(f'config.init_from={source!r}: not a .pth file, an orbax checkpoint '
                          'or a workdir with checkpoints')


def _composite(state: TrainState, model_config: dict, train: dict | None = None,
               params_only: bool = False) -> ocp.args.Composite:
  items = {'params': ocp.args.StandardSave(state.params),
           'model_config': ocp.args.JsonSave(model_config)}
  if not params_only:
    items['opt_state'] = ocp.args.StandardSave(state.opt_state)
    items['train'] = ocp.args.JsonSave(train)
  return ocp.args.Composite(**items)


def _restore(manager: ocp.CheckpointManager, step: int, abstract: TrainState) -> tuple[TrainState, dict]:
  restored = manager.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(abstract.params),
      opt_state=ocp.args.StandardRestore(abstract.opt_state),
      train=ocp.args.JsonRestore()))
  return TrainState(step=jnp.asarray(restored.train['step'], jnp.int32), params=restored.params,
                    opt_state=restored.opt_state), restored.train


# -- validation -------------------------------------------------------------------


def _panel(image: np.ndarray, height: int) -> np.ndarray:
  """An image nearest-upscaled to `height` rows (for image summaries)."""
  factor = height // image.shape[0]
  return np.repeat(np.repeat(image, factor, 0), factor, 1) if factor > 1 else image


def validate(predict: Callable, params: nnx.State, items: list[dict], phase: str,
             num_images: int) -> tuple[dict, dict]:
  """(scalars, images): mean PSNR/SSIM of the output on `items`, and input | output | target panels."""
  target_key = 'sharp_lr' if phase == 'deblur' else 'sharp_hr'
  psnrs, ssims, images = [], [], {}
  for i, item in enumerate(items):
    out = np.asarray(predict(params, item['blur_lr'][None]))[0]
    pred, target = image_metrics.to_uint8(out), image_metrics.to_uint8(item[target_key])
    psnrs.append(image_metrics.psnr(pred, target))
    ssims.append(image_metrics.ssim(pred, target))
    if i < num_images:
      h = target.shape[0]
      row = [_panel(image_metrics.to_uint8(item['blur_lr']), h), pred, target]
      images[f'val/{i}_{item["id"]}'] = np.concatenate(row, axis=1)[None]
  return {'val/psnr': float(np.mean(psnrs)), 'val/ssim': float(np.mean(ssims))}, images


# -- the loop ---------------------------------------------------------------------


@dataclasses.dataclass
class Result:
  """What a run ends with: the final state, the last validation scores, the workdir."""
  state: TrainState
  model: JDSR
  scalars: dict
  workdir: pathlib.Path


def _optimizer_key(config: ml_collections.ConfigDict) -> tuple:
  return (config.learning_rate, config.get('sr_learning_rate'), config.min_learning_rate,
          config.num_train_steps, config.adam_b1, config.adam_b2, config.adam_eps)


@dataclasses.dataclass(frozen=True)
class _Functions:
  labels: nnx.State
  init: Callable
  step: Callable
  predict: Callable


_COMPILED: dict[tuple, _Functions] = {}


def _compiled(graphdef: nnx.GraphDef, params: nnx.State, config: ml_collections.ConfigDict,
              mesh: jax.sharding.Mesh) -> _Functions:
  """The jit-compiled functions of a run, shared by runs of the same model, phase and optimizer.

  (Tests and scripts that train several times in one process then trace and
  compile each once.)
  """
  phase, remat = config.phase, config.remat
  # The model config fixes the graph (a GraphDef holding a dict is not hashable).
  key = (json.dumps(dict(config.model), sort_keys=True), phase, remat, _optimizer_key(config),
         mesh)
  if key in _COMPILED:
    return _COMPILED[key]
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  labels = param_labels(params, phase)
  tx = make_optimizer(config, labels)
  init = jax.jit(lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p)),
                 out_shardings=replicated)
  step = jax.jit(make_train_step(graphdef, labels, tx, phase, remat),
                 in_shardings=(replicated, sharded), out_shardings=(replicated, replicated),
                 donate_argnums=0)

  def predict(params, x):
    model = nnx.merge(graphdef, params)
    return model.deblur(x)[0][0] if phase == 'deblur' else model(x)[1]

  if len(_COMPILED) >= 8:
    _COMPILED.pop(next(iter(_COMPILED)))
  _COMPILED[key] = _Functions(labels=labels, init=init, step=step, predict=jax.jit(predict))
  return _COMPILED[key]


def _mesh() -> jax.sharding.Mesh:
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def _check_config(config: ml_collections.ConfigDict) -> None:
  if config.phase not in PHASES:
    raise ValueError(f'config.phase must be one of {PHASES}, got {config.phase!r}')
  n = jax.device_count()
  if config.batch_size % n:
    raise ValueError(f'config.batch_size={config.batch_size} is not a multiple of the '
                     f'{n} devices')
  if config.data.lr_size % 8:
    raise ValueError(f'config.data.lr_size={config.data.lr_size} must be a multiple of 8')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       batches: Callable[[int], Iterator[dict]] | None = None) -> Result:
  """Train one phase into `workdir`, resuming from its latest checkpoint if there is one.

  ``batches(start)``: host-local batches from element `start` on (dicts of
  NumPy 'blur_lr', 'sharp_lr', 'sharp_hr'); by default the tf.data pipeline
  over ``train_source(config)``.
  """
  from jdsr.data import pipeline

  _check_config(config)
  workdir = pathlib.Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  phase = config.phase
  mesh = _mesh()
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
  per_host = config.batch_size // jax.process_count()

  options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True,
                                         cleanup_tmp_directories=True)
  manager = ocp.CheckpointManager(workdir / 'checkpoints', options=options)
  best = ocp.CheckpointManager(
      workdir / 'best', options=ocp.CheckpointManagerOptions(
          max_to_keep=1, create=True, best_fn=lambda m: m['val/psnr'], best_mode='max',
          cleanup_tmp_directories=True))
  train_info = lambda step: {'step': step, 'phase': phase, 'seed': config.seed,
                             'batch_size': config.batch_size, 'data_position': step * per_host}
  resuming = manager.latest_step() is not None
  # A resumed run takes everything from its checkpoint: init_from is not read.
  model = convert.abstract_model(config.model) if resuming else initial_model(config)
  model_config = dict(model.config)
  graphdef, params = nnx.split(model, nnx.Param)
  fns = _compiled(graphdef, params, config, mesh)
  if resuming:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                            jax.eval_shape(fns.init, params))
    state, saved = _restore(manager, manager.latest_step(), abstract)
    for key in ('phase', 'seed', 'batch_size'):
      if saved[key] != config[key]:
        raise TrainingError(
            f'{workdir} holds a run with {key}={saved[key]!r}, the config says {config[key]!r}: '
            'resuming would not continue that run; use another --workdir')
    logging.info('Resuming from step %d', saved['step'])
  else:
    state = fns.init(params)
  start = int(state.step)
  step_fn, predict, labels = fns.step, fns.predict, fns.labels
  val_items = validation_set(config)

  if batches is None:
    source = train_source(config)
    batches = lambda start: pipeline.as_numpy(pipeline.train_batches(
        source, batch_size=per_host, seed=config.seed, start=start,
        lr_size=config.data.lr_size, scale=config.model.scale,
        shard=(jax.process_index(), jax.process_count())))
  data = batches(start * per_host)

  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if start == 0:
    writer.write_hparams(_flat(config))
  report = periodic_actions.ReportProgress(num_train_steps=config.num_train_steps, writer=writer)
  schedules = learning_rates(config)
  train_metrics, scalars, step = None, {}, start

  def save(step: int) -> None:
    manager.save(step, args=_composite(state, model_config, train_info(step)))

  try:
    for step in range(start + 1, config.num_train_steps + 1):
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        batch = next(data)
        batch = {key: jax.make_array_from_process_local_data(sharded, batch[key])
                 for key in ('blur_lr', 'sharp_lr', 'sharp_hr')}
        state, out = step_fn(state, batch)
      loss = float(out['loss'])
      if not np.isfinite(loss):
        last = manager.latest_step()
        raise TrainingError(
            f'the loss is {loss} at step {step}: stopped. The parameters were not updated; the '
            f'last good checkpoint is {workdir / "checkpoints" / str(last) if last else "none"}. '
            'Lower the learning rate or check the data.')
      update = TrainMetrics.single_from_model_output(loss=out['loss'])
      train_metrics = update if train_metrics is None else train_metrics.merge(update)
      report(step)
      last_step = step == config.num_train_steps
      if step % config.log_every == 0 or last_step:
        logged = {f'train/{k}': v for k, v in train_metrics.compute().items()}
        for group, schedule in schedules.items():
          if group in jax.tree.leaves(labels):
            logged[f'train/lr_{group}'] = float(schedule(step - 1))
        writer.write_scalars(step, logged)
        train_metrics = None
      if val_items and (step % config.eval_every == 0 or last_step):
        with report.timed('validate'):
          scalars, images = validate(predict, state.params, val_items, phase,
                                     config.data.val_images)
        writer.write_scalars(step, scalars)
        writer.write_images(step, images)
        best.save(step, args=_composite(state, model_config, params_only=True), metrics=scalars)
      if step % config.checkpoint_every == 0 or last_step:
        save(step)
  except KeyboardInterrupt:
    if int(state.step) > (manager.latest_step() or 0):
      logging.warning('Interrupted: saving step %d before stopping', int(state.step))
      save(int(state.step))
    raise
  finally:
    manager.wait_until_finished()
    best.wait_until_finished()
    manager.close()
    best.close()
    writer.close()
  model = nnx.merge(graphdef, jax.device_get(state.params))
  return Result(state=state, model=model, scalars=scalars, workdir=workdir)


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
