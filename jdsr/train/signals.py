"""Stopping a run cleanly: SIGTERM and SIGINT finish the step, save, and end with ``Stopped``."""

from __future__ import annotations

import logging
import pathlib
import signal
import threading


class Stopped(Exception):
  """A run stopped by SIGTERM or SIGINT (Ctrl-C), its checkpoint saved: running it again resumes."""

  def __init__(self, signal_name: str, step: int, checkpoint: pathlib.Path | None):
    self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
    where = f'checkpoint {checkpoint} saved' if checkpoint else 'no checkpoint yet'
    super().__init__(f'stopped by {signal_name} at step {step}, {where}; run the same command '
                     'again to resume')


class Signals:
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
