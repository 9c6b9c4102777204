"""The TensorBoard writer (jdsr.train.writer) when the disk fails it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers import ROOT


@pytest.mark.slow  # a process of its own: what happens at its exit is the test
def test_a_failed_last_flush_of_the_event_files_is_a_warning_not_a_traceback_at_exit(tmp_path):
  """A full disk at the end of training: the event file's last flush fails; the process says so
  once and exits without tensorboardX's traceback from its exit handler."""
  script = textwrap.dedent(f'''
      from jdsr.train import writer
      w = writer.Writer({str(tmp_path / 'logs')!r})
      w.write_scalars(1, {{'loss': 1.0}})
      def full():
        raise OSError(28, 'No space left on device')
      w._tb.file_writer.event_writer._ev_writer.flush = full
      w.close()
      print('closed')
  ''')
  done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                        timeout=120, cwd=ROOT)
  assert done.returncode == 0, done.stderr
  assert 'closed' in done.stdout
  assert 'Traceback' not in done.stderr, done.stderr
  assert 'No space left on device' in done.stderr
