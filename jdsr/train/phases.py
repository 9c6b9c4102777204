"""The three training phases as data, the optimizer, and the training step.

``PHASES`` holds, for each phase, which parameter groups it trains, the loss,
the batch entries the loss reads and what validation scores:

* ``'deblur'`` (phase 1): the deblurring module alone; the super-resolution
  part is not even run. Loss: ``losses.deblur_loss`` against the sharp LR.
* ``'sr'`` (phase 2): the transformation and super-resolution module; the
  deblurring module, the shared PReLU included, is frozen. Loss:
  ``losses.sr_loss`` against the sharp HR.
* ``'joint'`` (phase 3, or from scratch): everything, with separate learning
  rates for the two groups. Loss: ``losses.joint_loss``.

The groups come from the parameter paths (``param_group``): the ``SRNet_*``
modules are 'sr', everything else (the shared PReLU ``act`` included)
'deblur'. Freezing is one mechanism, ``split_params``: the step splits the
parameters into the trained and the frozen ones, differentiates and updates
only the trained (the optimizer never sees the frozen: no optimizer state, no
update, not differentiated), and puts the frozen back as they were, bitwise.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from jdsr.train import losses
from jdsr.nn.model import JDSR, remat_blocks

GROUPS = ('deblur', 'sr')


def per_sample(loss: Callable[..., jax.Array], *arrays) -> jax.Array:
  """``loss`` of each sample of a batch, shape (N,).

  The losses are means over all elements, so the mean of these over the batch
  is the loss of the batch: the step weights them (padding samples get 0).
  """
  return jax.vmap(lambda *xs: loss(*jax.tree.map(lambda x: x[None], xs)))(*arrays)


def _deblur_loss(model: JDSR, batch: dict) -> jax.Array:
  images, _ = model.deblur(batch['blur_lr'])
  return per_sample(losses.deblur_loss, images, batch['sharp_lr'])


def _sr_loss(model: JDSR, batch: dict) -> jax.Array:
  _, sr = model(batch['blur_lr'])
  return per_sample(losses.sr_loss, sr, batch['sharp_hr'])


def _joint_loss(model: JDSR, batch: dict) -> jax.Array:
  images, sr = model(batch['blur_lr'])
  return per_sample(losses.joint_loss, images, sr, batch['sharp_lr'], batch['sharp_hr'])


def _stage3(model: JDSR, x: jax.Array) -> jax.Array:
  return model.deblur(x)[0][0]


def _sr(model: JDSR, x: jax.Array) -> jax.Array:
  return model(x)[1]


@dataclasses.dataclass(frozen=True)
class Phase:
  """One training phase."""
  name: str
  trained: tuple[str, ...]  # the parameter groups it trains; the others are frozen
  loss: Callable[[JDSR, dict], jax.Array]  # (model, batch) -> the loss of each sample, (N,)
  batch_keys: tuple[str, ...]  # the batch entries the loss reads
  predict: Callable[[JDSR, jax.Array], jax.Array]  # (model, blur_lr) -> the image validated
  target: str  # the batch entry ``predict`` is scored against


PHASES = {
    'deblur': Phase('deblur', ('deblur',), _deblur_loss, ('blur_lr', 'sharp_lr'), _stage3,
                    'sharp_lr'),
    'sr': Phase('sr', ('sr',), _sr_loss, ('blur_lr', 'sharp_hr'), _sr, 'sharp_hr'),
    'joint': Phase('joint', GROUPS, _joint_loss, ('blur_lr', 'sharp_lr', 'sharp_hr'), _sr,
                   'sharp_hr'),
}


def get(name: str) -> Phase:
  """``PHASES[name]``, with a clear error for an unknown name."""
  if name not in PHASES:
    raise ValueError(f'phase must be one of {tuple(PHASES)}, got {name!r}')
  return PHASES[name]


# -- parameters and optimizer ------------------------------------------------------


def param_group(path: tuple) -> str:
  """'sr' for the transformation and super-resolution module (``SRNet_*``), else 'deblur'."""
  first = path[0]
  name = str(getattr(first, 'key', getattr(first, 'name', first)))
  return 'sr' if name.startswith('SRNet_') else 'deblur'


def trained_filter(phase: Phase) -> nnx.filterlib.Filter:
  """An NNX filter of the parameters ``phase`` trains."""
  return nnx.All(nnx.Param, lambda path, _: param_group(path) in phase.trained)


def split_params(params: nnx.State, phase: Phase) -> tuple[nnx.State, nnx.State]:
  """(trained, frozen): the parameters of the groups ``phase`` trains, and the others."""
  return nnx.split_state(params, trained_filter(phase), ...)


def _group_labels(params: nnx.State) -> nnx.State:
  return jax.tree_util.tree_map_with_path(lambda path, _: param_group(path), params)


def learning_rates(config: ml_collections.ConfigDict) -> dict[str, optax.Schedule]:
  """Per group: cosine annealing from its initial rate to ``config.min_learning_rate``.

  The schedules run on the host: the loop evaluates them at each step and feeds
  the rates to the compiled step (``make_train_step``), so runs that differ only
  in their rates or their length share one program.
  """
  out = {}
  for group, lr in (('deblur', config.learning_rate),
                    ('sr', config.get('sr_learning_rate') or config.learning_rate)):
    out[group] = optax.cosine_decay_schedule(lr, max(config.num_train_steps, 1),
                                             alpha=min(config.min_learning_rate / lr, 1.0))
  return out


def rates_at(schedules: dict[str, optax.Schedule], step: int) -> dict[str, np.ndarray]:
  """The rates of step ``step`` (1-based) as float32 scalars: the schedules at ``step - 1``.

  What the step is fed and what the loop logs: optax's own count starts at 0.
  """
  return {group: np.asarray(schedule(step - 1), np.float32)
          for group, schedule in schedules.items()}


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """``optimizer`` with the config's Adam settings."""
  return optimizer(config.adam_b1, config.adam_b2, config.adam_eps)


def optimizer(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
  """Adam's moments per group, for the trained parameters (``split_params``).

  ``optax.adam(lr)`` is ``scale_by_adam`` followed by scaling by ``-lr``; the
  step does the scaling with the rate it is given (``make_train_step``), so no
  rate is a constant of the compiled program. ``b1``, ``b2`` and ``eps`` are:
  runs that change them compile anew.
  """
  adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)
  return optax.partition({group: adam for group in GROUPS}, _group_labels)


# -- the step ----------------------------------------------------------------------


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State  # all of them, trained and frozen
  opt_state: optax.OptState  # of the trained parameters only


def init_state(params: nnx.State, phase: Phase, tx: optax.GradientTransformation) -> TrainState:
  return TrainState(jnp.zeros((), jnp.int32), params, tx.init(split_params(params, phase)[0]))


REMAT_MIN_FREE_GIB = 32  # 'auto': accelerators with less memory than this rematerialise


def use_remat(setting: str | bool) -> bool:
  """Whether to rematerialise the stacked blocks (``config.remat``: 'auto', 'on' or 'off').

  Rematerialising keeps each block's input and its 3×3 convolutions' outputs
  and recomputes the rest in the backward pass (``jdsr.nn.model.remat_blocks``):
  about half the memory for a little more compute. 'auto' turns it on on
  CPUs, where it costs no time, and on accelerators with less than
  ``REMAT_MIN_FREE_GIB`` GiB of memory; off on larger ones (an H100's 80 GB
  holds the paper's batch without it).
  """
  if isinstance(setting, bool):
    return setting
  if setting not in ('auto', 'on', 'off'):
    raise ValueError(f"config.remat must be 'auto', 'on' or 'off', got {setting!r}")
  if setting != 'auto':
    return setting == 'on'
  device = jax.devices()[0]
  if device.platform == 'cpu':
    return True
  limit = (device.memory_stats() or {}).get('bytes_limit', 0)
  return limit < REMAT_MIN_FREE_GIB * 2**30


def all_finite(tree) -> jax.Array:
  """Whether every element of every array in ``tree`` is finite (a scalar bool array)."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


OPTIMIZER_SCOPE = 'optimizer'  # its ops' named scope (benchmarks/breakdown.py)


def make_train_step(graphdef: nnx.GraphDef, phase: Phase, tx: optax.GradientTransformation,
                    remat: bool = False, microbatches: int = 1
                    ) -> Callable[[TrainState, dict, dict], tuple]:
  """``step(state, batch, rates) -> (state, {'loss', 'finite'})``, pure (to be jit-compiled).

  ``rates``: the learning rate of each group for this step, scalars
  (``rates_at``), arguments of the program, not constants in it. ``tx`` is
  ``make_optimizer``'s: each trained parameter's update is its Adam direction
  times ``-rates[group]``.

  ``batch['weight']`` (N,) weighs each sample: 1, or 0 for the padding that
  makes a batch divisible over the devices. The loss is the weighted mean of
  the samples' losses, so a batch of 3 padded to 4 gives the update of the 3.
  ``microbatches``: the batch is split in that many parts (each spread over
  all devices), and their gradients are summed one after the other: the same
  update, a fraction of the activation memory.

  Only the trained parameters are differentiated and updated; the frozen ones
  come out as they went in, bitwise. A non-finite loss, or an update that would
  make a parameter non-finite, changes nothing: the state returned is the state
  given, step included, and ``finite`` is False.
  """
  wrt = nnx.DiffState(0, trained_filter(phase))  # only the trained parameters are differentiated

  def weighted_sum(model: JDSR, batch: dict) -> jax.Array:
    with remat_blocks(remat):
      return jnp.sum(batch['weight'] * phase.loss(model, batch))

  def gradients(params: nnx.State, batch: dict) -> tuple[jax.Array, nnx.State]:
    return nnx.value_and_grad(weighted_sum, argnums=wrt)(nnx.merge(graphdef, params), batch)

  def step(state: TrainState, batch: dict, rates: dict) -> tuple[TrainState, dict]:
    trained, frozen = split_params(state.params, phase)
    if microbatches == 1:
      total, grads = gradients(state.params, batch)
    else:  # microbatch j: samples j, j + k, j + 2k, ...: a share of every device's part
      parts = jax.tree.map(lambda x: jnp.swapaxes(
          x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:]), 0, 1), batch)

      def accumulate(carry, part):
        # The parameters ride along in the carry: NNX builds the model from values of the
        # scan's own trace level.
        params, sums = carry
        return (params, jax.tree.map(jnp.add, sums, gradients(params, part))), None

      zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, trained))
      (_, (total, grads)), _ = jax.lax.scan(accumulate, (state.params, zero), parts)
    count = jnp.sum(batch['weight'])
    loss, grads = total / count, jax.tree.map(lambda g: g / count, grads)
    with jax.named_scope(OPTIMIZER_SCOPE):
      directions, opt_state = tx.update(grads, state.opt_state, trained)
      updates = jax.tree_util.tree_map_with_path(
          lambda path, u: -rates[param_group(path)] * u, directions)
      params = nnx.merge_state(optax.apply_updates(trained, updates), frozen)
    new = TrainState(step=state.step + 1, params=params, opt_state=opt_state)
    finite = jnp.isfinite(loss) & all_finite(params)
    new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
    return new, {'loss': loss, 'finite': finite}

  return step
