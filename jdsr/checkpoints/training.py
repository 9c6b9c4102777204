"""The run guard: a training run's checkpoints, and nothing lost when the run or its disk fails.

``RunGuard(workdir, ...)`` owns what a run writes and resumes from under
``workdir`` (the layout is in ``jdsr.train.loop``), so that the loop only steps,
validates and logs:

* two orbax managers: ``checkpoints/`` (periodic and final, the newest
  ``keep`` kept) and ``best/`` (the best validation PSNR);
* on opening, the temporary checkpoints that a run which is gone left
  unfinished are removed (``remove_stale_tmp``);
* ``resume``: the latest good checkpoint. Each is read and checked with the
  checkpoint package's own check (``jdsr.checkpoints.non_finite``); a damaged
  one (unreadable, a missing array file, NaN or inf) is moved aside to
  ``checkpoints/damaged-STEP`` with a warning, and the one before it is tried;
* ``save`` and ``save_best``: first the workdir's lease is checked (a run whose
  lock was removed or taken writes nothing more), then the room (about twice
  the arrays' bytes), then the write, waited for; any failure (a full disk) is
  one ``TrainingError`` saying that the checkpoints before it are intact.

``lock(workdir)`` holds ``WORKDIR/.lock`` (``jdsr.io.locks``) for the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
import shutil
import time
from typing import Any, Callable, Iterator

import jax
import orbax.checkpoint as ocp

from jdsr import checkpoints, config as config_lib
from jdsr.errors import TrainingError, one_line
from jdsr.io import locks


@contextlib.contextmanager
def lock(workdir: pathlib.Path) -> Iterator[locks.Lease | None]:
  """Hold ``WORKDIR/.lock`` (a lease with a heartbeat) while a run trains there.

  A second live run in the same workdir is refused with a TrainingError; the
  lock of a run that is gone is taken over. Yields the ``Lease``; in a
  multi-host run, process 0 holds it for all (the others get None).
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


class RunGuard:
  """The checkpoints of one training run in ``workdir`` (see the module docstring).

  ``keep``: how many periodic checkpoints to keep. ``lease``: the workdir's
  lock (``lock``), checked before every write; None where another process
  holds it. Use it as a context manager: closing waits for the writes.
  """

  def __init__(self, workdir: str | os.PathLike, *, keep: int,
               lease: locks.Lease | None = None):
    self.workdir = pathlib.Path(workdir).absolute()
    self.lease = lease
    if jax.process_index() == 0:
      for folder in ('checkpoints', 'best'):
        if (self.workdir / folder).is_dir():
          remove_stale_tmp(self.workdir / folder)
    # Each manager its own barrier names: with several processes, the periodic and the best
    # checkpoint of one step are saved at once, and orbax names its barriers by step.
    sync = lambda prefix: ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)
    self.periodic = ocp.CheckpointManager(
        self.workdir / 'checkpoints', options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, multiprocessing_options=sync('checkpoints')))
    self.best = ocp.CheckpointManager(
        self.workdir / 'best', options=ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, best_fn=lambda m: m['val/psnr'], best_mode='max',
            multiprocessing_options=sync('best')))

  def __enter__(self) -> RunGuard:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    """Waits for the writes and ends orbax's threads (also when the run stops early)."""
    try:
      self.wait()
    finally:
      self.periodic.close()
      self.best.close()

  def wait(self) -> None:
    self.periodic.wait_until_finished()
    self.best.wait_until_finished()

  def latest_step(self) -> int | None:
    return self.periodic.latest_step()

  def latest_path(self) -> pathlib.Path | None:
    step = self.latest_step()
    return None if step is None else self.workdir / 'checkpoints' / str(step)

  def reached_preemption(self, step: int) -> bool:
    return self.periodic.reached_preemption(step)

  def still_ours(self) -> None:
    """A TrainingError if the workdir's lock was removed or taken by another run."""
    try:
      if self.lease is not None:
        self.lease.check()
    except locks.LockError as e:
      raise TrainingError(str(e)) from None

  # -- resuming ----------------------------------------------------------------------

  def resume(self, abstract_params, abstract_opt_state, expect: dict,
             model_config) -> tuple[Any, Any, dict]:
    """(params, opt_state, train record) of the latest good checkpoint.

    ``expect``: the 'train' fields the checkpoint must hold to continue this
    run (phase, seed, batch size: else a TrainingError); ``model_config``: the
    architecture it must fit. Damaged checkpoints are moved aside (see the
    module docstring); if none is good, a TrainingError names them.
    """
    damaged = []
    for step in sorted(self.periodic.all_steps(), reverse=True):
      try:
        out = self._resume_step(step, abstract_params, abstract_opt_state, expect, model_config)
      except _Damaged as e:
        damaged.append(str(e))
        os.replace(self.workdir / 'checkpoints' / str(step),
                   self.workdir / 'checkpoints' / f'damaged-{step}')
        self.periodic.reload()
        continue
      if damaged:
        logging.warning('%s: resuming from step %d instead (the damaged ones are in '
                        'checkpoints/damaged-*)', '; '.join(damaged), step)
      return out
    raise TrainingError(f'no checkpoint can be resumed from: {"; ".join(damaged)}; the damaged '
                        'ones are in checkpoints/damaged-*')

  def _resume_step(self, step, abstract_params, abstract_opt_state, expect, model_config):
    where = self.workdir / 'checkpoints' / str(step)
    read = lambda args: self.periodic.restore(step, args=args)
    saved = _read(where, read, checkpoints.restore_args(model_config=True, train=True))
    for key, value in expect.items():
      if saved.train[key] != value:
        raise TrainingError(
            f'{self.workdir} holds a run with {key}={saved.train[key]!r}, the config says '
            f'{value!r}: resuming would not continue that run; use another --workdir')
    checkpoints.check_fits(config_lib.model_config(**saved.model_config), model_config, where)
    restored = _read(where, read, checkpoints.restore_args(params=abstract_params,
                                                            opt_state=abstract_opt_state))
    bad = checkpoints.non_finite((restored.params, restored.opt_state))
    if bad:
      raise _Damaged(f'{where} holds NaN or inf values ({len(bad)} arrays, such as {bad[0]})')
    logging.info('Resuming from step %d', step)
    return restored.params, restored.opt_state, saved.train

  # -- saving ------------------------------------------------------------------------

  def save(self, step: int, params, model_config: dict, *, opt_state, train: dict) -> None:
    """A periodic checkpoint: parameters, model config, optimizer state and 'train' record."""
    self._written(self.periodic, step, lambda: self.periodic.save(step, args=checkpoints.save_args(
        params, model_config, opt_state=opt_state, train=train)), (params, opt_state))

  def save_best(self, step: int, params, model_config: dict, scalars: dict) -> None:
    """The parameters of ``step`` into ``best/``, if its ``val/psnr`` is the best so far."""
    self._written(self.best, step, lambda: self.best.save(
        step, args=checkpoints.save_args(params, model_config), metrics=scalars), (params,))

  def _written(self, manager: ocp.CheckpointManager, step: int, save: Callable[[], Any],
               trees: tuple = ()) -> None:
    """Checks the lease and the room, saves, waits; a failure is one TrainingError."""
    self.still_ours()
    room(pathlib.Path(manager.directory), trees, step)
    try:
      save()
      manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - orbax raises many kinds, from its writer threads too
      raise TrainingError(f'cannot write checkpoint {step} in {manager.directory} '
                          f'({one_line(e, kind=True)}); the checkpoints before it are intact'
                          ) from e


def room(directory: pathlib.Path, trees: tuple, step: int) -> None:
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


def _read(where: pathlib.Path, read: Callable, args) -> Any:
  """``read(args)``, quietly; ``_Damaged`` naming what is missing if it cannot be read."""
  try:
    with checkpoints.quiet_logs():
      return read(args)
  except Exception as e:  # noqa: BLE001 - orbax raises many kinds for a damaged checkpoint
    raise _Damaged(f'{where} cannot be read ({what_is_missing(where, e)})') from None


def what_is_missing(where: pathlib.Path, error: BaseException) -> str:
  """What a checkpoint that cannot be read lacks, in a few words (orbax's own text is not).

  An item folder that is gone is named; an array that TensorStore could not read
  (OCDBT: a data file missing, cut short or overwritten) is named with its item.
  """
  for part in ('params', 'opt_state', 'train', 'model_config'):
    if not (where / part).exists():
      return f'its {part}/ is missing'
  cause: BaseException | None = error
  while cause is not None:
    found = re.search(r'Error reading "([^"]+)" in OCDBT database at local file "([^"]+)"',
                      str(cause))
    if found:
      key, folder = found.group(1).split('/')[0], pathlib.Path(found.group(2))
      part = folder.name or folder.parent.name
      return (f'{part}/ holds an array that cannot be read, {key}: a data file in '
              f'{part}/ is missing or damaged')
    cause = cause.__cause__ or cause.__context__
  return one_line(error, kind=True)[:200]
