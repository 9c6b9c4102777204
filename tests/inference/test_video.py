"""Videos (jdsr/inference/video.py, through jdsr-restore): frames, size, rate, audio, broken files.

Each test writes its own short clip with PyAV and restores it with the demo model
(whose output, unlike a random tiny model's, depends on its input), at 112×72: the
size of samples/clip.mp4, one compiled program for all. The comparisons decode the
written input clip, restore its frames as images (jdsr-restore on PNG files) and
compare them with the decoded output video: exactly for a lossless codec (FFV1,
RGB), within H.264's error for the default codec.
"""

from __future__ import annotations

import fractions
import pathlib

import av
import numpy as np
import pytest
from PIL import Image

import jdsr
from tests.helpers import frames, write_clip
from jdsr.cli import restore as restore_cli
from jdsr.inference import video


def _decode(path: pathlib.Path) -> list[np.ndarray]:
  with av.open(str(path)) as inp:
    return [f.to_ndarray(format='rgb24') for f in inp.decode(inp.streams.video[0])]


def _rate(path: pathlib.Path) -> fractions.Fraction:
  with av.open(str(path)) as inp:
    return inp.streams.video[0].average_rate


def _restored_as_images(frames: list[np.ndarray], folder: pathlib.Path, capsys, *options
                        ) -> list[np.ndarray]:
  """The frames written as PNG files and restored by jdsr-restore (with ``options``) as images."""
  for i, rgb in enumerate(frames):
    (folder / 'in').mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(folder / 'in' / f'{i:04d}.png')
  assert restore_cli.main([str(folder / 'in'), '-o', str(folder / 'out'), '-q',
                           *map(str, options)]) == 0
  capsys.readouterr()
  return [np.asarray(Image.open(folder / 'out' / f'{i:04d}.png')) for i in range(len(frames))]


def _cli(capsys, *argv) -> tuple[int, str]:
  code = restore_cli.main([str(a) for a in argv])
  return code, capsys.readouterr().err


def test_lossless_video_equals_its_frames_restored_as_images(tmp_path, capsys):
  clip = tmp_path / 'clip.mkv'
  write_clip(clip, frames(4, 112, 72), codec='ffv1', pix_fmt='bgr0', fps=10)
  code, err = _cli(capsys, clip, '-o', tmp_path / 'clip_x4.mkv', '--codec', 'ffv1', '-q')
  assert code == 0, err
  out = _decode(tmp_path / 'clip_x4.mkv')
  assert len(out) == 4 and out[0].shape == (288, 448, 3)
  assert _rate(tmp_path / 'clip_x4.mkv') == 10
  expected = _restored_as_images(_decode(clip), tmp_path / 'images', capsys)
  for got, want in zip(out, expected):
    np.testing.assert_array_equal(got, want)
  assert not np.array_equal(out[0], out[1])


def test_mp4_keeps_frame_rate_and_audio(tmp_path, capsys):
  clip = tmp_path / 'clip.mp4'
  write_clip(clip, frames(6, 112, 72), codec='libx264', pix_fmt='yuv420p', fps=12, audio=True)
  code, err = _cli(capsys, clip, '-o', tmp_path / 'out', '-q')
  assert code == 0, err
  result = tmp_path / 'out' / 'clip.mp4'
  out = _decode(result)
  assert len(out) == 6 and out[0].shape == (288, 448, 3)
  assert _rate(result) == 12
  with av.open(str(clip)) as a, av.open(str(result)) as b:
    assert b.streams.video[0].codec_context.name == 'h264'
    assert b.streams.video[0].pix_fmt == 'yuv420p'
    assert b.streams.audio[0].codec_context.name == 'aac'
    packets = [[bytes(p) for p in c.demux(audio=0) if p.dts is not None] for c in (a, b)]
    assert packets[0] == packets[1] and len(packets[0]) > 6  # copied, not re-encoded
  # H.264 at crf 18 with 4:2:0 chroma (half-resolution colour) loses a few levels on the
  # restored frames' sharp edges: 35-37 dB, 3 levels on average here. A frame compared with
  # its neighbour's restoration is at 20 dB: the bound tells the right frame from a wrong one.
  expected = _restored_as_images(_decode(clip), tmp_path / 'images', capsys)
  for got, want in zip(out, expected):
    error = got.astype(np.float64) - want
    assert 10 * np.log10(255 ** 2 / np.mean(error ** 2)) > 30
    assert np.abs(error).mean() < 5


def test_truncated_video_keeps_the_frames_restored_before(tmp_path, capsys):
  clip = tmp_path / 'clip.mkv'
  write_clip(clip, frames(16, 112, 72), codec='ffv1', pix_fmt='bgr0', fps=12)
  data = clip.read_bytes()
  cut = tmp_path / 'cut.mkv'
  cut.write_bytes(data[:len(data) * 6 // 10])
  code, err = _cli(capsys, cut, '-o', tmp_path / 'cut_x4.mkv', '--codec', 'ffv1', '-q')
  assert code == 1
  errors = [line for line in err.splitlines() if line.startswith('jdsr-restore: error:')]
  assert len(errors) == 1 and 'cut.mkv' in errors[0] and 'truncated' in errors[0], err
  kept = _decode(tmp_path / 'cut_x4.mkv')
  decoded = _decode(cut)
  assert 4 < len(kept) == len(decoded) < 16
  assert f'the {len(kept)} frames restored before it' in errors[0]
  expected = _restored_as_images(decoded, tmp_path / 'images', capsys)
  for got, want in zip(kept, expected):
    np.testing.assert_array_equal(got, want)


def test_truncated_mp4_is_reported(tmp_path, capsys):
  clip = tmp_path / 'clip.mp4'
  write_clip(clip, frames(16, 112, 72), codec='libx264', pix_fmt='yuv420p', fps=12,
              container_options={'movflags': 'faststart'})  # the index first, then the frames
  data = clip.read_bytes()
  cut = tmp_path / 'cut.mp4'
  cut.write_bytes(data[:len(data) * 6 // 10])
  code, err = _cli(capsys, cut, '-o', tmp_path / 'cut_x4.mp4', '-q')
  assert code == 1 and 'cut.mp4' in err and 'Traceback' not in err
  assert 0 < len(_decode(tmp_path / 'cut_x4.mp4')) < 16


def test_broken_files_are_one_line_errors(tmp_path, capsys):
  (tmp_path / 'in').mkdir()
  (tmp_path / 'in' / 'garbage.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42 not really a video')
  (tmp_path / 'in' / 'empty.mkv').write_bytes(b'')
  write_clip(tmp_path / 'in' / 'good.mkv', frames(2, 112, 72), codec='ffv1', pix_fmt='bgr0',
              fps=5)
  code, err = _cli(capsys, tmp_path / 'in', '-o', tmp_path / 'out', '-q')
  assert code == 1
  errors = [line for line in err.splitlines() if line.startswith('jdsr-restore: error:')]
  assert len(errors) == 2 and 'Traceback' not in err, err
  assert any('garbage.mp4' in e for e in errors) and any('empty.mkv' in e for e in errors)
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['good.mkv']


def test_a_container_that_cannot_hold_the_audio(tmp_path):
  clip = tmp_path / 'clip.mp4'
  write_clip(clip, frames(2, 16, 8), codec='libx264', pix_fmt='yuv420p', fps=5, audio=True)
  model = jdsr.load(jdsr.DEMO_MODEL)
  with pytest.raises(video.VideoError, match='cannot hold the audio'):
    video.restore_video(model, clip, tmp_path / 'out.webm')
  assert not (tmp_path / 'out.webm').exists()
