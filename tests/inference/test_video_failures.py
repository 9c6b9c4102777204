"""jdsr-restore on hard videos: audio longer than the video, a SIGTERM halfway, a stream that
changes size. Each is run as a command; what it wrote is decoded again.
"""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from tests.helpers import ROOT, one_line, run, wait_for


def _video(path: pathlib.Path, sizes: list[tuple[int, int]], codec: str = 'libx264',
           audio_seconds: float = 0.0) -> None:
  """Frames of the given sizes at 10 fps (one encoder per size: a stream that changes size)."""
  with av.open(str(path), 'w') as out:
    stream = out.add_stream(codec, rate=10)
    stream.width, stream.height = sizes[0]
    stream.pix_fmt = 'yuvj420p' if codec == 'mjpeg' else 'yuv420p'
    audio = out.add_stream('aac', rate=44100) if audio_seconds else None
    encoders = {}
    for i, (w, h) in enumerate(sizes):
      if (w, h) not in encoders:
        encoders[w, h] = av.CodecContext.create(codec, 'w') if (w, h) != sizes[0] else None
        if encoders[w, h] is not None:
          encoders[w, h].width, encoders[w, h].height = w, h
          encoders[w, h].pix_fmt, encoders[w, h].time_base = stream.pix_fmt, stream.time_base
      rgb = np.random.default_rng(i).integers(0, 255, (h, w, 3), np.uint8)
      frame = av.VideoFrame.from_ndarray(rgb, format='rgb24').reformat(format=stream.pix_fmt)
      frame.pts = i
      encoder = encoders[w, h]
      for packet in (stream.encode(frame) if encoder is None else encoder.encode(frame)):
        packet.stream = stream
        out.mux(packet)
    for packet in stream.encode(None):
      out.mux(packet)
    if audio is not None:
      for i in range(int(audio_seconds * 44100 / 1024)):
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp',
                                             layout='mono')
        samples.sample_rate, samples.pts = 44100, i * 1024
        out.mux(audio.encode(samples))
      out.mux(audio.encode(None))


def _restore(*args) -> subprocess.CompletedProcess:
  return run('-m', 'jdsr.cli.restore', *args)


@pytest.mark.slow
def test_a_complete_matroska_video_with_longer_audio_is_not_truncated(tmp_path):
  _video(tmp_path / 'clip.mkv', [(32, 24)] * 3, audio_seconds=1.0)
  result = _restore(tmp_path / 'clip.mkv', '-o', tmp_path / 'out.mkv', '-q')
  assert result.returncode == 0, result.stderr[-3000:]
  with av.open(str(tmp_path / 'out.mkv')) as out:
    assert sum(1 for _ in out.decode(video=0)) == 3


@pytest.mark.slow
def test_sigterm_during_a_video_keeps_the_frames_restored(tmp_path):
  _video(tmp_path / 'long.mp4', [(64, 48)] * 300)
  log = tmp_path / 'log'
  proc = subprocess.Popen([sys.executable, '-m', 'jdsr.cli.restore', str(tmp_path / 'long.mp4'),
                           '-o', str(tmp_path / 'out' / 'long.mp4')], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=log.open('w'), text=True)
  try:
    wait_for(proc, log, 'frames: ')
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
  finally:
    proc.kill()
  assert proc.returncode == 143, log.read_text()[-3000:]
  assert 'frames restored so far are kept' in log.read_text()
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['long.mp4']  # no temp file
  with av.open(str(tmp_path / 'out' / 'long.mp4')) as out:
    assert 0 < sum(1 for _ in out.decode(video=0)) < 300


@pytest.mark.slow
def test_a_video_that_changes_size_is_refused_in_one_line(tmp_path):
  _video(tmp_path / 'sizes.avi', [(32, 24)] * 3 + [(48, 32)] * 2, codec='mjpeg')
  result = _restore(tmp_path / 'sizes.avi', '-o', tmp_path / 'out.avi', '-q')
  assert result.returncode == 1
  assert 'frame 4 is 48x32, the video started at 32x24' in one_line(result.stderr)
  with av.open(str(tmp_path / 'out.avi')) as out:  # the frames before it, at their own size
    frames = [f.to_ndarray(format='rgb24') for f in out.decode(video=0)]
  assert len(frames) == 3 and frames[0].shape == (96, 128, 3)
