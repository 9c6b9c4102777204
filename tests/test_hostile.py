"""Preemption, restarts and hostile files: each case as a scheduler, a container or a user makes it.

Signals are sent for real, to subprocesses, with timeouts; the files a failure must not
harm are compared before and after.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import zlib

import av
import numpy as np
import pytest
from PIL import Image

import jdsr
from jdsr.inference import restore
from jdsr.io import imagefile, locks

pytestmark = pytest.mark.slow  # end-to-end: see pyproject.toml

ROOT = pathlib.Path(__file__).parents[1]
SHARP = ROOT / 'samples' / 'sharp'
PHOTOS = ['--config.data.source=photos', f'--config.data.photos_dir={SHARP}',
          f'--config.data.val_photos_dir={SHARP}']


def _train_py(*args) -> list[str]:
  return [sys.executable, 'train.py', '--config', 'configs/tiny.py', *map(str, args)]


def _one_line(stderr: str) -> str:
  lines = [line for line in stderr.strip().splitlines() if line.strip()]
  assert 'Traceback' not in stderr and 'Event loop is closed' not in stderr, stderr[-3000:]
  return lines[-1]


def _wait_for(proc: subprocess.Popen, log: pathlib.Path, text: str, timeout: float = 300) -> None:
  end = time.monotonic() + timeout
  while text not in log.read_text(errors='replace'):
    assert proc.poll() is None, log.read_text()[-3000:]
    assert time.monotonic() < end, f'no {text!r} in time:\n' + log.read_text()[-3000:]
    time.sleep(0.2)


# -- (1) the lock: a lease with a heartbeat ------------------------------------------------


def _lock(folder: pathlib.Path, pid: int, host: str, age: float = 0) -> pathlib.Path:
  path = folder / locks.NAME
  path.write_text(json.dumps({'pid': pid, 'host': host, 'token': 'theirs', 'started': 'then'}))
  os.utime(path, (time.time() - age, time.time() - age))
  return path


def test_a_restarted_container_takes_over_the_lock_of_its_own_pid(tmp_path):
  """PID 1 restarted: the lock names this very process, which cannot be another run."""
  _lock(tmp_path, os.getpid(), socket.gethostname())
  with locks.hold(tmp_path) as lease:
    assert json.loads(lease.path.read_text())['token'] != 'theirs'
  assert not (tmp_path / locks.NAME).exists()


def test_a_lock_from_another_host_is_a_lease(tmp_path):
  path = _lock(tmp_path, 12345, 'some-other-host')
  with pytest.raises(locks.LockError, match='in use by another run .*pid 12345 on some-other-host'
                     r'.*taken over once it has not been refreshed for 120 s'):
    with locks.hold(tmp_path):
      pass
  assert json.loads(path.read_text())['token'] == 'theirs'  # untouched
  _lock(tmp_path, 12345, 'some-other-host', age=121)  # its heartbeat stopped: a requeue
  with locks.hold(tmp_path):
    pass


def test_the_heartbeat_keeps_the_lease_and_only_its_own_lock_is_removed(tmp_path):
  with locks.hold(tmp_path, heartbeat=0.05) as lease:
    os.utime(lease.path, (time.time() - 100, time.time() - 100))
    time.sleep(0.5)
    assert time.time() - lease.path.stat().st_mtime < 5  # refreshed
    lease.check()
    _lock(tmp_path, 1, 'elsewhere')  # taken over meanwhile by someone else
    time.sleep(0.3)
    assert lease.lost.is_set()  # the heartbeat saw it
    with pytest.raises(locks.LockError, match='now held by pid 1 on elsewhere while this run ran'):
      lease.check()
  assert json.loads((tmp_path / locks.NAME).read_text())['token'] == 'theirs'


# -- (2), (3), (4): preemption, changed settings, one-line failures ------------------------


def _start(args, log: pathlib.Path) -> subprocess.Popen:
  return subprocess.Popen(_train_py(*args), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=log.open('w'), text=True)


@pytest.mark.parametrize('sig, code', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_saves_and_releases(tmp_path, sig, code):
  work, log = tmp_path / 'run', tmp_path / 'log'
  args = ['--workdir', work, '--config.phase=deblur', '--config.num_train_steps=100000',
          '--config.checkpoint_every=100000', '--config.eval_every=100000', *PHOTOS]
  proc = _start(args, log)
  try:
    _wait_for(proc, log, '[3] train/loss')
    proc.send_signal(sig)
    proc.wait(timeout=300)
  finally:
    proc.kill()
  stderr = log.read_text()
  assert proc.returncode == code, stderr[-3000:]
  last = _one_line(stderr)
  step = int(last.split(' at step ')[1].split(',')[0])
  assert last == (f'train.py: stopped by {signal.Signals(sig).name} at step {step}, checkpoint '
                  f'{work / "checkpoints" / str(step)} saved; run the same command again to resume')
  assert (work / 'checkpoints' / str(step)).is_dir() and not (work / locks.NAME).exists()
  # Requeued, the same command resumes there: tests/test_multiprocess.py, with a changed
  # learning rate named in one warning.


def test_resuming_with_a_model_that_does_not_fit_is_one_line(tmp_path):
  first = subprocess.run(_train_py('--workdir', tmp_path, '--config.phase=deblur',
                                   '--config.num_train_steps=2', *PHOTOS),
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  other = subprocess.run(_train_py('--workdir', tmp_path, '--config.phase=deblur',
                                   '--config.model.n_feat=12', *PHOTOS),
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert other.returncode == 1
  assert 'n_feat=8' in _one_line(other.stderr) and other.stderr.count('\n') < 40


@pytest.fixture
def small_disk(tmp_path):
  """A 16 MiB file system of its own (tmpfs), to fill up."""
  mount = tmp_path / 'small'
  mount.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', str(mount)],
                    capture_output=True).returncode:
    pytest.skip('cannot mount a small file system here (needs root)')
  yield mount
  subprocess.run(['umount', '-l', str(mount)], check=False)


def _files(folder: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
          if p.is_file()}


def test_a_full_disk_is_one_line_and_harms_no_checkpoint(small_disk):
  work = small_disk / 'run'
  args = ['--workdir', work, '--config.phase=deblur', *PHOTOS]
  first = subprocess.run(_train_py(*args, '--config.num_train_steps=2'), cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  saved = _files(work / 'checkpoints' / '2')
  free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
  (small_disk / 'filler').write_bytes(bytes(max(free - 512 * 1024, 0)))
  full = subprocess.run(_train_py(*args), cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert full.returncode == 1
  last = _one_line(full.stderr)
  assert last.startswith('train.py: error: no room for checkpoint 4 in ') and 'MiB are free' in last
  assert _files(work / 'checkpoints' / '2') == saved


def test_a_write_that_fails_midway_is_one_training_error(tmp_path):
  from jdsr.train import loop

  class Failing:
    directory = tmp_path

    def wait_until_finished(self):
      raise ValueError('RESOURCE_EXHAUSTED: Error writing "x"\nFailed to write: No space left')

  with pytest.raises(loop.TrainingError) as raised:
    loop._written(Failing(), 6, lambda: None)
  assert str(raised.value) == (f'cannot write checkpoint 6 in {tmp_path} (ValueError: '
                               'RESOURCE_EXHAUSTED: Error writing "x"); the checkpoints before '
                               'it are intact')


# -- (5) .pth files that declare huge tensors -----------------------------------------------


def test_a_small_pth_declaring_huge_tensors_is_refused_from_its_metadata(tmp_path):
  torch = pytest.importorskip('torch')
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), rngs=0), tmp_path / 'ok.pth')
  state = torch.load(tmp_path / 'ok.pth', weights_only=True)['state_dict']
  state['tail.weight'] = torch.zeros(1).expand(10**6, 10**6)  # a 931 GiB view of 4 bytes
  torch.save({'state_dict': state}, tmp_path / 'bomb.pth')
  assert (tmp_path / 'bomb.pth').stat().st_size < 2**20
  code = ('import resource, sys, time, jdsr\n'
          'start, rss = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
          'try:\n'
          f'  jdsr.load({str(tmp_path / "bomb.pth")!r}, jdsr.tiny_model_config())\n'
          'except jdsr.CheckpointError as e:\n'
          '  print(e)\n'
          'print(time.time() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024)\n')
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
  message, figures = out.stdout.strip().splitlines()
  assert 'wrong shape keys (1): tail.weight: (1000000, 1000000) (expected (3, 12, 3, 3))' in message
  seconds, megabytes = map(float, figures.split())
  assert seconds < 20 and megabytes < 200


# -- (6) a 16-bit PNG decompression bomb ---------------------------------------------------


def _png16_zeros(path: pathlib.Path, width: int, height: int) -> None:
  """A 16-bit RGB PNG of zeros, written directly (it compresses to almost nothing)."""
  def chunk(kind: bytes, data: bytes) -> bytes:
    return (len(data).to_bytes(4, 'big') + kind + data
            + zlib.crc32(kind + data).to_bytes(4, 'big'))
  header = width.to_bytes(4, 'big') + height.to_bytes(4, 'big') + bytes([16, 2, 0, 0, 0])
  rows = zlib.compress(bytes((1 + 6 * width) * height), 9)
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', rows)
                   + chunk(b'IEND', b''))


def test_a_16_bit_png_bomb_is_refused_from_its_header(tmp_path):
  bomb = tmp_path / 'bomb.png'
  _png16_zeros(bomb, 6000, 6000)
  assert bomb.stat().st_size < 300_000
  start = time.monotonic()
  options = restore.Options(max_output_megapixels=100)
  with pytest.raises(restore.OutputTooLarge, match=r'24000x24000 \(576.0 megapixels\), more than '
                     r'the limit of 100.0'):
    imagefile.read_image(bomb, check_size=options.check_size)
  assert time.monotonic() - start < 2
  result = subprocess.run([sys.executable, '-m', 'jdsr.cli.restore', str(bomb), '-o',
                           str(tmp_path / 'out.png')], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 1
  assert _one_line(result.stderr).endswith('raise --max_output_megapixels if you have the memory')
  out = tmp_path / 'eval'
  result = subprocess.run([sys.executable, 'eval.py', '--input_dir', str(tmp_path), '--output_dir',
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1 and '--config.max_output_megapixels' in result.stderr


# -- (7), (8), (9): videos ------------------------------------------------------------------


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
  return subprocess.run([sys.executable, '-m', 'jdsr.cli.restore', *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_a_complete_matroska_video_with_longer_audio_is_not_truncated(tmp_path):
  _video(tmp_path / 'clip.mkv', [(32, 24)] * 3, audio_seconds=1.0)
  result = _restore(tmp_path / 'clip.mkv', '-o', tmp_path / 'out.mkv', '-q')
  assert result.returncode == 0, result.stderr[-3000:]
  with av.open(str(tmp_path / 'out.mkv')) as out:
    assert sum(1 for _ in out.decode(video=0)) == 3


def test_sigterm_during_a_video_keeps_the_frames_restored(tmp_path):
  _video(tmp_path / 'long.mp4', [(64, 48)] * 300)
  log = tmp_path / 'log'
  proc = subprocess.Popen([sys.executable, '-m', 'jdsr.cli.restore', str(tmp_path / 'long.mp4'),
                           '-o', str(tmp_path / 'out' / 'long.mp4')], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=log.open('w'), text=True)
  try:
    _wait_for(proc, log, 'frames: ')
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


def test_a_video_that_changes_size_is_refused_in_one_line(tmp_path):
  _video(tmp_path / 'sizes.avi', [(32, 24)] * 3 + [(48, 32)] * 2, codec='mjpeg')
  result = _restore(tmp_path / 'sizes.avi', '-o', tmp_path / 'out.avi', '-q')
  assert result.returncode == 1
  assert 'frame 4 is 48x32, the video started at 32x24' in _one_line(result.stderr)
  with av.open(str(tmp_path / 'out.avi')) as out:  # the frames before it, at their own size
    frames = [f.to_ndarray(format='rgb24') for f in out.decode(video=0)]
  assert len(frames) == 3 and frames[0].shape == (96, 128, 3)


# -- (10), (11), (12): eval.py --------------------------------------------------------------


def _eval(*args) -> list[str]:
  return [sys.executable, 'eval.py', *map(str, args)]


def test_a_second_eval_into_the_same_folder_is_refused(tmp_path):
  log, out = tmp_path / 'log', tmp_path / 'out'
  first = subprocess.Popen(_eval('--input_dir', ROOT / 'samples' / 'blurry', '--output_dir', out,
                                 '--ensemble'), cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=log.open('w'), text=True)
  try:
    end = time.monotonic() + 120
    while not (out / locks.NAME).exists():
      assert first.poll() is None and time.monotonic() < end, log.read_text()[-3000:]
      time.sleep(0.2)
    second = subprocess.run(_eval('--input_dir', ROOT / 'samples' / 'blurry', '--output_dir', out),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
  finally:
    first.kill()
  assert second.returncode == 1
  assert 'is in use by another evaluation' in _one_line(second.stderr)


def test_missing_reference_outputs_lose_no_work(tmp_path):
  inputs, refs, out = tmp_path / 'in', tmp_path / 'refs', tmp_path / 'out'
  inputs.mkdir()
  refs.mkdir()
  for name in ('a', 'b'):
    Image.open(ROOT / 'samples' / 'blurry' / 'chelsea.png').crop((0, 0, 32, 32)).save(
        inputs / f'{name}.png')
  Image.new('RGB', (128, 128)).save(refs / 'a.png')
  result = subprocess.run(_eval('--input_dir', inputs, '--output_dir', out, '--reference_outputs',
                                refs), cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(p.name for p in (out / 'images').iterdir()) == ['a.png', 'b.png']
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['no_reference'] == ['b'] and not summary['failed']
  assert 'no reference: ' in result.stderr


def test_ground_truths_that_do_not_match_are_reported(tmp_path):
  inputs, truths, out = tmp_path / 'in', tmp_path / 'truths', tmp_path / 'out'
  inputs.mkdir()
  truths.mkdir()
  for name in ('gray', 'twice', 'none', 'ok'):
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(inputs / f'{name}.png')
  Image.new('L', (32, 32)).save(truths / 'gray.png')
  Image.new('RGB', (32, 32)).save(truths / 'twice.png')
  Image.new('RGB', (32, 32)).save(truths / 'twice.jpg')
  Image.new('RGB', (32, 32)).save(truths / 'ok.png')
  result = subprocess.run(_eval('--input_dir', inputs, '--target_dir', truths, '--output_dir', out),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1  # the grayscale ground truth is refused
  assert 'gray.png: the ground truth is grayscale and the input' in result.stderr
  assert 'skipped: ' in result.stderr and 'twice.jpg, twice.png' in result.stderr
  assert 'no ground truth: ' in result.stderr and 'none.png' in result.stderr
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['scored'] == 1 and summary['no_ground_truth'] == ['none']


# -- (13) jdsr-restore's messages -------------------------------------------------------------


def test_jdsr_restore_says_what_is_wrong(tmp_path):
  result = _restore(tmp_path / 'missing.png', '-o', tmp_path / 'out.png')
  assert result.returncode == 1 and _one_line(result.stderr).endswith(
      'missing.png: no such file or folder')
  result = _restore('-', '-o', tmp_path / 'out.png')
  assert result.returncode == 2 and 'standard input is not supported' in _one_line(result.stderr)
  photo = tmp_path / 'photo.png'
  Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(photo)
  result = _restore(photo, '-o', tmp_path / 'out.webp')
  assert result.returncode == 1 and 'must end in one of .png' in result.stderr
  assert not (tmp_path / 'out.webp').exists()
  folder = tmp_path / 'folder'
  folder.mkdir()
  Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(folder / 'anim.gif')
  Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(folder / 'still.png')
  result = _restore(folder, '-o', tmp_path / 'restored', '-q')
  assert result.returncode == 0 and f'skipped: {folder / "anim.gif"}' in result.stderr
  (tmp_path / 'file').write_text('')
  result = _restore(photo, '-o', tmp_path / 'file' / 'out.png')
  assert result.returncode == 1 and 'not a folder' in _one_line(result.stderr)
