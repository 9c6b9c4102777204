"""Images too large to decode: refused from their header, before any memory is spent on them."""

from __future__ import annotations

import pathlib
import time
import zlib

import pytest

from jdsr.inference import restore
from jdsr.io import imagefile
from tests.helpers import one_line, run


def _png16_zeros(path: pathlib.Path, width: int, height: int) -> None:
  """A 16-bit RGB PNG of zeros, written directly (it compresses to almost nothing)."""
  def chunk(kind: bytes, data: bytes) -> bytes:
    return (len(data).to_bytes(4, 'big') + kind + data
            + zlib.crc32(kind + data).to_bytes(4, 'big'))
  header = width.to_bytes(4, 'big') + height.to_bytes(4, 'big') + bytes([16, 2, 0, 0, 0])
  rows = zlib.compress(bytes((1 + 6 * width) * height), 9)
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', rows)
                   + chunk(b'IEND', b''))


@pytest.mark.slow
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
  result = run('-m', 'jdsr.cli.restore', bomb, '-o', tmp_path / 'out.png', timeout=300)
  assert result.returncode == 1
  assert one_line(result.stderr).endswith('raise --max_output_megapixels if you have the memory')
  out = tmp_path / 'eval'
  result = run('eval.py', '--input_dir', tmp_path, '--output_dir', out, timeout=300)
  assert result.returncode == 1 and '--config.max_output_megapixels' in result.stderr
