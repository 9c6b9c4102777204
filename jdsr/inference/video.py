"""Restoring videos frame by frame: decode, restore each frame, encode at ×4, copy the audio.

``restore_video(model, source, target, options)`` reads ``source`` with PyAV
(``av``, which bundles FFmpeg) one frame at a time, restores each frame as
``jdsr.inference.restore.restore`` restores an image (8-bit RGB in, 8-bit RGB out) and
encodes it at once, so memory stays that of one frame whatever the length.

* Timing: every frame keeps its timestamp (in the source's time base), so the
  frame rate, variable rates included, is the source's.
* Codec: ``libx264`` (H.264, yuv420p, ``crf`` 18), or ``libvpx-vp9`` for
  .webm, unless ``codec`` names another FFmpeg encoder. Lossless RGB codecs
  (``LOSSLESS``: ffv1, libx264rgb, png, ...) get an RGB pixel format, so that
  ``codec='ffv1'`` in .mkv, or ``'libx264rgb'`` with ``crf=0``, stores exactly
  the restored 8-bit frames. The colour tags (matrix, range, primaries,
  transfer), the rotation and the pixel aspect ratio are the source's.
* Audio: every audio stream is copied as it is (no re-encoding); a container
  that cannot hold it is a ``VideoError`` before any frame is restored.
  Subtitle and data streams are not copied.
* The output is written by ``jdsr.io.files.atomic_write``. A video that cannot be
  decoded to the end (corrupt, or shorter than its header says: truncated) is
  a ``VideoError`` naming the frame, raised after the frames restored before
  it were written to ``target`` as a complete, playable video. So is Ctrl-C
  (re-raised as KeyboardInterrupt once the file is written).
"""

from __future__ import annotations

import fractions
import os
import pathlib
import sys
from typing import Callable

import av
from tqdm import tqdm

from jdsr.io import files, pixels
from jdsr.io.outputs import VIDEO_SUFFIXES  # noqa: F401 (re-exported)
from jdsr.errors import one_line
from jdsr.nn.model import JDSR
from jdsr.inference.restore import SCALE, Options, Progress, restore

DEFAULT_CRF = 18
CRF_CODECS = ('libx264', 'libx264rgb', 'libx265', 'libvpx-vp9')
LOSSLESS = ('ffv1', 'libx264rgb', 'png', 'rawvideo', 'utvideo', 'huffyuv', 'ffvhuff', 'qtrle')
_RGB_FORMATS = ('rgb24', 'bgr0', 'bgr24', 'gbrp')
_YUV_TAGS = ('colorspace', 'color_range')  # meaningless for RGB output
_TAGS = _YUV_TAGS + ('color_primaries', 'color_trc')


class VideoError(ValueError):
  """A video that cannot be read, restored or written; the one-line message names the file."""

  def __init__(self, path: str | os.PathLike, problem: str):
    message = f'{os.fspath(path)}: {problem}'
    super().__init__(message.replace('\r', '\\r').replace('\n', '\\n'))


def default_codec(target: str | os.PathLike) -> str:
  """The encoder for a target file: VP9 for .webm, H.264 (libx264) for anything else."""
  return 'libvpx-vp9' if pathlib.Path(target).suffix.lower() == '.webm' else 'libx264'


def restore_video(model: JDSR, source: str | os.PathLike, target: str | os.PathLike,
                  options: Options = Options(), *, codec: str | None = None,
                  crf: int = DEFAULT_CRF, progress: Progress = Progress(),
                  frames: Callable[[int, int | None], None] | None = None) -> int:
  """Restores every frame of ``source`` into the ×4 video ``target``; returns the frame count.

  ``codec``: an FFmpeg encoder name (default: ``default_codec(target)``); ``crf``:
  its quality for ``CRF_CODECS`` (0: lossless, 18: visually lossless; others ignore
  it). ``progress`` is what each frame's ``restore`` reports (compiling, tiles);
  ``frames(done, total)`` is called after each frame (total: the header's frame
  count, None if it does not say). See the module docstring for timing, audio
  and errors.
  """
  source, target = pathlib.Path(source), pathlib.Path(target)
  codec = codec or default_codec(target)
  first = _probe(source, options)
  done = {'frames': 0, 'error': None, 'started': False}

  def write(tmp: str) -> None:
    try:
      with av.open(os.fspath(source)) as inp, av.open(tmp, 'w', format=_format(target)) as out:
        _transcode(model, inp, out, target, first, codec, crf, options, done, progress, frames)
    except av.error.FFmpegError as e:
      raise VideoError(target if done['started'] else source, _ffmpeg_message(e)) from None

  try:
    files.atomic_write(target, write)
  except (av.error.FFmpegError, OSError) as e:
    raise VideoError(target, _ffmpeg_message(e)) from None
  if isinstance(done['error'], KeyboardInterrupt):
    tqdm.write(f'{target}: interrupted: the {done["frames"]} frames restored so far are kept',
               file=sys.stderr)
    raise done['error']
  if done['error'] is not None:
    raise VideoError(source, f'{done["error"]}; the {done["frames"]} frames restored before it '
                             f'are in {target}')
  return done['frames']


def _probe(source: pathlib.Path, options: Options) -> av.VideoFrame:
  """The first frame of ``source`` (its rotation), or a VideoError saying why there is none.

  The frame size in the stream's header is checked (``Options.check_size``) before
  any frame is decoded.
  """
  if not source.is_file():
    raise VideoError(source, 'no such file' if not source.exists() else 'not a file')
  try:
    with av.open(os.fspath(source)) as inp:
      if not inp.streams.video:
        raise VideoError(source, 'no video stream in this file')
      header = inp.streams.video[0].codec_context
      if header.width and header.height:
        options.check_size(header.height, header.width)
      for frame in inp.decode(inp.streams.video[0]):
        return frame
  except av.error.FFmpegError as e:
    raise VideoError(source, f'cannot read video ({_ffmpeg_message(e)})') from None
  raise VideoError(source, 'no frame could be decoded (empty or corrupt video)')


def _format(target: pathlib.Path) -> str | None:
  """The muxer for ``target``'s extension (the temporary file's name does not say it)."""
  return {'.m4v': 'mp4', '.mkv': 'matroska'}.get(target.suffix.lower(), target.suffix[1:].lower())


def _transcode(model, inp, out, target: pathlib.Path, first, codec: str, crf: int,
               options: Options, done: dict, progress: Progress, frames_done) -> None:
  vin = inp.streams.video[0]
  vout = out.add_stream(codec, rate=vin.average_rate or vin.guessed_rate or vin.base_rate)
  vout.width, vout.height = SCALE * first.width, SCALE * first.height
  vout.pix_fmt = _pixel_format(codec)
  rgb_out = vout.pix_fmt in _RGB_FORMATS
  vout.codec_context.time_base = vin.time_base
  vout.time_base = vin.time_base
  if codec in CRF_CODECS:
    vout.options = {'crf': str(crf), **({'b': '0'} if codec == 'libvpx-vp9' else {})}
  if vin.sample_aspect_ratio:
    vout.codec_context.sample_aspect_ratio = vin.sample_aspect_ratio
  tags = {name: getattr(vin.codec_context, name) for name in _TAGS}
  for name, value in tags.items():
    if not (rgb_out and name in _YUV_TAGS):
      setattr(vout.codec_context, name, value)
  if first.rotation:
    vout.set_display_rotation(first.rotation)
  audio = {}
  for ain in inp.streams.audio:
    if ain.codec_context.name not in out.supported_codecs:
      raise VideoError(target, f'a {out.format.name} file cannot hold the audio of '
                               f'{inp.name} ({ain.codec_context.name}); use .mkv or .mov')
    audio[ain.index] = out.add_stream_from_template(ain)

  expected = _expected_end(inp, vin)
  total = vin.frames or None
  last, step = None, None
  packets = inp.demux(vin, *inp.streams.audio)
  try:
    while True:
      try:  # reading and decoding: an error here ends the video, what came before is kept
        packet = next(packets, None)
        if packet is None:
          break
        frames = [] if packet.stream.index in audio else packet.decode()
      except av.error.FFmpegError as e:
        done['error'] = f'cannot decode frame {done["frames"] + 1} ({_ffmpeg_message(e)})'
        break
      if packet.stream.index in audio and packet.dts is not None:  # not an end-of-stream marker
        packet.stream = audio[packet.stream.index]
        out.mux(packet)
      for frame in frames:
        if (frame.width, frame.height) != (first.width, first.height):
          done['error'] = (f'frame {done["frames"] + 1} is {frame.width}x{frame.height}, the video '
                           f'started at {first.width}x{first.height}: a video that changes size '
                           'is not supported (cut it where the size changes)')
          break
        pts = frame.pts if frame.pts is not None else done['frames']
        restored = restore(model, pixels.to_float(frame.to_ndarray(format='rgb24')), options,
                           progress)
        image = av.VideoFrame.from_ndarray(pixels.quantize(restored), format='rgb24')
        image.pts, image.time_base = pts, vin.time_base
        for name, value in tags.items():  # converted to the output's YUV as the source was
          if name in _YUV_TAGS:
            setattr(image, name, value)
        out.mux(vout.encode(image))
        done['started'] = True
        done['frames'] += 1
        step = None if last is None else pts - last
        last = pts
        if frames_done:
          frames_done(done['frames'], total)
      if done['error'] is not None:
        break
  except KeyboardInterrupt as e:
    done['error'] = e
  if done['frames'] == 0:
    if isinstance(done['error'], KeyboardInterrupt):
      raise done['error']
    raise VideoError(inp.name, done['error'] if isinstance(done['error'], str)
                     else 'no frame could be decoded')
  if done['error'] is None:
    done['error'] = _truncated(vin, done['frames'], last, step, expected)
  out.mux(vout.encode(None))


def _pixel_format(codec: str) -> str:
  """yuv420p (plays everywhere) or, for a lossless codec, RGB; else the codec's first format."""
  try:
    formats = [f.name for f in av.Codec(codec, 'w').video_formats or ()]
  except (av.error.FFmpegError, ValueError) as e:
    raise VideoError(codec, f'no such video encoder in this FFmpeg ({e})') from None
  preferred = _RGB_FORMATS if codec in LOSSLESS else ('yuv420p',)
  return next((f for f in preferred if f in formats), formats[0] if formats else 'yuv420p')


def _expected_end(inp, vin) -> fractions.Fraction | None:
  """When the video stream should end (seconds), from the header; None if it does not say.

  Matroska writes each stream's own length as its DURATION tag, while FFmpeg
  gives every stream of it the container's duration (the longest stream's:
  audio that outlasts the video): the tag wins.
  """
  text = vin.metadata.get('DURATION')
  if text:
    try:
      h, m, s = text.split(':')
      return fractions.Fraction(int(h) * 3600 + int(m) * 60) + fractions.Fraction(s)
    except ValueError:
      pass
  if vin.duration and vin.time_base:
    return fractions.Fraction(vin.start_time or 0) * vin.time_base + vin.duration * vin.time_base
  return None


def _truncated(vin, frames: int, last, step, expected) -> str | None:
  """Why the decoded video looks shorter than its header says, or None."""
  if vin.frames and frames < vin.frames:
    return f'the video ends after {frames} of its {vin.frames} frames (truncated?)'
  if expected is None or last is None or not vin.time_base:
    return None
  rate = vin.average_rate or vin.guessed_rate
  frame_time = step * vin.time_base if step else (1 / rate if rate else 0)
  end = last * vin.time_base + frame_time
  missing = expected - end
  if missing > max(2 * frame_time, fractions.Fraction(1, 2)):
    return (f'the video ends at {float(end):.2f} s of its {float(expected):.2f} s after '
            f'{frames} frames (truncated?)')
  return None


def _ffmpeg_message(e: BaseException) -> str:
  return one_line(getattr(e, 'strerror', None) or e)
