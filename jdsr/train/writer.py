"""Training logs without TensorFlow: TensorBoard event files (tensorboardX) and progress.

``Writer`` writes scalars, images and the hyperparameters to TensorBoard event
files in the workdir (``tensorboard --logdir`` reads them) and logs the scalars;
only process 0 writes files. ``Progress`` reports steps per second and the time
left, as the scalar 'steps_per_sec' and a log line, once a minute and at the
last step; time spent in ``progress.timed(...)`` (validation) does not count.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterator, Mapping

import numpy as np
from absl import logging


class Writer:
  """TensorBoard event files in ``logdir`` (when ``enabled``), and the scalars in the log."""

  def __init__(self, logdir: str | os.PathLike, *, enabled: bool = True):
    self._tb = None
    if enabled:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.fspath(logdir), flush_secs=30)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """The config as a text summary: one 'name: value' line each."""
    if self._tb is not None:
      text = '\n\n'.join(f'{k}: {v}' for k, v in sorted(hparams.items()))
      self._tb.add_text('hparams', text, 0)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    logging.info('[%d] %s', step, ', '.join(f'{k}={float(v):.6g}' for k, v in scalars.items()))
    if self._tb is not None:
      for name, value in scalars.items():
        self._tb.add_scalar(name, float(value), step)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """``images``: name → uint8 (1, H, W, 3) or (H, W, 3)."""
    if self._tb is not None:
      for name, image in images.items():
        image = np.asarray(image)
        self._tb.add_image(name, image[0] if image.ndim == 4 else image, step, dataformats='HWC')

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    """Flushes and closes the event files; a failed flush (a full disk) is a warning.

    tensorboardX retries an unfinished close at exit and prints its traceback there; so a
    writer whose flush failed is marked closed, and its events since the last flush are lost.
    """
    if self._tb is None:
      return
    tb, self._tb = self._tb, None
    try:
      tb.close()
    except OSError as e:
      logging.warning('TensorBoard events since the last flush are lost: %s', e)
      for file_writer in tb.all_writers.values():
        event_writer = file_writer.event_writer
        event_writer._closed = True  # pylint: disable=protected-access
        event_writer._worker.stop()  # pylint: disable=protected-access


class Progress:
  """Steps per second and the time left, every ``every_secs`` and at the last step."""

  def __init__(self, num_train_steps: int, writer: Writer, every_secs: float = 60.0):
    self.num_train_steps, self.writer, self.every_secs = num_train_steps, writer, every_secs
    self._last_step = self._last_time = None
    self._paused = 0.0

  def __call__(self, step: int) -> None:
    now = time.monotonic()
    if self._last_step is None:
      self._last_step, self._last_time, self._paused = step, now, 0.0
      return
    if now - self._last_time < self.every_secs and step != self.num_train_steps:
      return
    elapsed = max(now - self._last_time - self._paused, 1e-9)
    rate = (step - self._last_step) / elapsed
    left = (self.num_train_steps - step) / rate if rate > 0 else float('inf')
    logging.info('step %d of %d: %.3g steps/s, %.0f min left', step, self.num_train_steps, rate,
                 left / 60)
    self.writer.write_scalars(step, {'steps_per_sec': rate})
    self._last_step, self._last_time, self._paused = step, now, 0.0

  @contextlib.contextmanager
  def timed(self, name: str) -> Iterator[None]:
    """Time spent in the block (``name``: what it is, for the log) is left out of steps/s."""
    start = time.monotonic()
    try:
      yield
    finally:
      seconds = time.monotonic() - start
      self._paused += seconds
      logging.info('%s took %.1f s', name, seconds)
