"""jdsr-restore's messages: a missing input, standard input, an unsupported output type, files
it skips, an output under a file; each says what is wrong in one line.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.helpers import one_line, run


def _restore(*args) -> subprocess.CompletedProcess:
  return run('-m', 'jdsr.cli.restore', *args)


@pytest.mark.slow
def test_jdsr_restore_says_what_is_wrong(tmp_path):
  result = _restore(tmp_path / 'missing.png', '-o', tmp_path / 'out.png')
  assert result.returncode == 1 and one_line(result.stderr).endswith(
      'missing.png: no such file or folder')
  result = _restore('-', '-o', tmp_path / 'out.png')
  assert result.returncode == 2 and 'standard input is not supported' in one_line(result.stderr)
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
  assert result.returncode == 1 and 'not a folder' in one_line(result.stderr)
