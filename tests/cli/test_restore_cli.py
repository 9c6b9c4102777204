"""jdsr-restore (jdsr/cli/restore.py) on images: files, folders, options, bad files, inputs kept.

With the demo model (the default), on images of the size of samples/blurry/chelsea.png:
they share one compiled program with the other tests that restore that photo.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from PIL import Image

import jdsr
from jdsr.io import imagefile, pixels
from jdsr.inference import restore
from jdsr.cli import restore as restore_cli


SIZE = (112, 75)  # chelsea's (width, height)


@pytest.fixture(scope='module')
def model() -> jdsr.JDSR:
  return jdsr.load(jdsr.DEMO_MODEL)


def _photo(path: pathlib.Path, size=SIZE, mode='RGB', seed=0) -> pathlib.Path:
  rng = np.random.default_rng(seed)
  channels = {'RGB': 3, 'RGBA': 4, 'L': 1}[mode]
  samples = (rng.random((size[1], size[0], channels)) * 255).astype(np.uint8)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(samples[..., 0] if mode == 'L' else samples, mode).save(path)
  return path


def _expected(model, path: pathlib.Path, options=restore.Options()) -> np.ndarray:
  """What the command should write for ``path``: restore() of the image, as 8-bit samples."""
  return pixels.quantize(restore.restore(model, imagefile.read_image(path).rgb, options))


def _run(capsys, *argv) -> tuple[int, str, str]:
  code = restore_cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


def test_one_file_to_a_named_output(model, tmp_path, capsys):
  photo = _photo(tmp_path / 'photo.jpg')
  code, out, err = _run(capsys, photo, '-o', tmp_path / 'photo_x4.png', '--checkpoint',
                        jdsr.DEMO_MODEL, '-q')
  assert code == 0, err
  written = np.asarray(Image.open(tmp_path / 'photo_x4.png'))
  assert written.shape == (300, 448, 3)
  np.testing.assert_array_equal(written, _expected(model, photo))
  assert '1 restored, 0 failed' in out
  assert sorted(p.name for p in tmp_path.iterdir()) == ['photo.jpg', 'photo_x4.png']  # no temp


def test_folders_and_files_into_a_folder_keep_each_layout(model, tmp_path, capsys):
  photos = tmp_path / 'photos'
  _photo(photos / 'a.png')
  _photo(photos / 'gray.png', mode='L', seed=1)
  _photo(photos / 'alpha.png', mode='RGBA', seed=2)
  imagefile.write_image(photos / 'deep.png', np.random.default_rng(3).random((75, 112, 3)),
                      bits=16)
  (photos / 'notes.txt').write_text('not an image')  # not listed: not an image extension
  extra = _photo(tmp_path / 'extra.jpg', seed=4)
  code, _, err = _run(capsys, photos, extra, '-o', tmp_path / 'out', '-q')
  assert code == 0, err
  out = tmp_path / 'out'
  assert sorted(p.name for p in out.iterdir()) == [
      'a.png', 'alpha.png', 'deep.png', 'extra.png', 'gray.png']
  np.testing.assert_array_equal(np.asarray(Image.open(out / 'a.png')),
                                _expected(model, photos / 'a.png'))
  assert Image.open(out / 'gray.png').mode == 'L'
  assert Image.open(out / 'alpha.png').mode == 'RGBA'
  deep = imagefile.read_image(out / 'deep.png')
  assert deep.bits == 16 and deep.rgb.shape == (300, 448, 3)


def test_options_reach_restore(tmp_path, capsys, monkeypatch):
  """--notlsc, --ensemble, --tile and --dtype become restore.Options (restore itself: test_restore.py)."""
  seen = []

  def fake_restore(model, image, options, progress=None):
    seen.append(options)
    return np.zeros((4 * image.shape[0], 4 * image.shape[1], 3), np.float32)

  monkeypatch.setattr(restore, 'restore', fake_restore)
  photo = _photo(tmp_path / 'p.png')
  code, _, err = _run(capsys, photo, '-o', tmp_path / 'o.png', '--notlsc', '--ensemble',
                      '--tile', '40', '--dtype', 'bfloat16', '-q')
  assert code == 0, err
  code, _, err = _run(capsys, photo, '-o', tmp_path / 'o.png', '-q', '--overwrite')
  assert code == 0, err
  assert seen == [restore.Options(tlsc=None, ensemble=True, tile=40, dtype='bfloat16'),
                  restore.Options()]


def test_bad_files_get_one_line_each_and_the_rest_are_restored(tmp_path, capsys):
  photos = tmp_path / 'photos'
  _photo(photos / 'good.png')
  (photos / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
  (photos / 'empty.jpg').write_bytes(b'')
  code, out, err = _run(capsys, photos, tmp_path / 'missing.png', '-o', tmp_path / 'out', '-q')
  assert code == 1
  errors = [line for line in err.splitlines() if line.startswith('jdsr-restore: error:')]
  assert len(errors) == 3, err
  assert any('missing.png' in e for e in errors)
  assert any('broken.png' in e for e in errors) and any('empty.jpg' in e for e in errors)
  assert 'Traceback' not in err
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['good.png']
  assert '1 restored, 3 failed' in out


def test_never_writes_over_an_input(tmp_path, capsys):
  photos = tmp_path / 'photos'
  a = _photo(photos / 'a.png')
  before = a.read_bytes()
  _photo(photos / 'b.jpg', seed=1)
  code, _, err = _run(capsys, photos, '-o', photos, '-q')  # its outputs would be inputs next
  assert code == 2 and 'that is an input folder' in err
  assert sorted(p.name for p in photos.iterdir()) == ['a.png', 'b.jpg'] and a.read_bytes() == before
  code, _, err = _run(capsys, a, '-o', a, '-q', '--overwrite')
  assert code == 1 and 'over an input' in err and a.read_bytes() == before


def test_inputs_that_share_a_name(tmp_path, capsys):
  """As eval.py: a.png and a.jpg become a.png.png and a.jpg.png; a name twice is an error."""
  _photo(tmp_path / 'in' / 'a.png')
  _photo(tmp_path / 'in' / 'a.jpg', seed=1)
  _photo(tmp_path / 'in' / 'b.png', seed=2)
  _photo(tmp_path / 'more' / 'b.png', seed=3)
  code, out, err = _run(capsys, tmp_path / 'in', tmp_path / 'more', '-o', tmp_path / 'out', '-q')
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a.jpg.png', 'a.png.png',
                                                                  'b.png.png']
  assert code == 1 and 'restore it separately' in err and str(tmp_path / 'more') in err
  assert '3 restored, 1 failed' in out


def test_usage_errors(tmp_path, capsys):
  a, b = _photo(tmp_path / 'a.png'), _photo(tmp_path / 'b.png')
  code, _, err = _run(capsys, a, b, '-o', tmp_path / 'x.png')
  assert code == 2 and 'must be a folder' in err
  code, _, err = _run(capsys, a, '-o', tmp_path / 'x.mp4')
  assert code == 1 and 'is an image, so its output must end in one of .png' in err
  code, _, err = _run(capsys, a, '-o', tmp_path / 'y.png', '--tile', '20')
  assert code == 2 and '--tile' in err
  code, _, err = _run(capsys, a, '-o', tmp_path / 'y.png', '--checkpoint', tmp_path / 'nothing')
  assert code == 1 and 'nothing' in err and len(err.strip().splitlines()) == 1
  with pytest.raises(SystemExit) as exit_info:
    restore_cli.parse_args(['--help'])
  assert exit_info.value.code == 0


def test_the_bundled_demo_model_by_default(model, tmp_path, capsys):
  photo = _photo(tmp_path / 'photo.png')
  code, _, err = _run(capsys, photo, '-o', tmp_path / 'out.png', '-q')
  assert code == 0, err
  assert 'demo model that ships with jdsr' in err
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'out.png')),
                                _expected(model, photo))


def test_real_esrgan_and_test_py_names(model, tmp_path, capsys):
  """-i, -s/--outscale, --suffix, --ext (Real-ESRGAN); --weights, --flip_test (the official test.py)."""
  a, b = _photo(tmp_path / 'in' / 'a.jpg'), _photo(tmp_path / 'in' / 'b.png', seed=1)
  code, out, err = _run(capsys, '-i', a, '-i', b, '-o', tmp_path / 'out', '-s', 2,
                        '--suffix', 'out', '--ext', 'auto', '--weights', jdsr.DEMO_MODEL, '-q')
  assert code == 0, err
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a_out.jpg', 'b_out.png']
  written = np.asarray(Image.open(tmp_path / 'out' / 'b_out.png'), np.float32) / 255
  assert written.shape == (150, 224, 3)  # 2x the input, from the x4 image (Lanczos)
  x4 = restore.restore(model, imagefile.read_image(b).rgb)
  halved = np.clip(pixels.resize_lanczos(x4, (150, 224)), 0, 1)
  assert np.abs(written - halved).max() <= 0.5 / 255 + 1e-6
  assert Image.open(tmp_path / 'out' / 'a_out.jpg').format == 'JPEG'
  code, _, _ = _run(capsys, a, '-o', tmp_path / 'png', '--ext', 'png')
  assert code == 0 and [p.name for p in (tmp_path / 'png').iterdir()] == ['a.png']

  args = restore_cli.parse_args(['x.png', '-o', 'y.png', '--flip_test', '--weights', 'w.pth',
                                 '-t', '64'])
  assert args.ensemble and args.checkpoint == 'w.pth' and args.tile == 64


@pytest.mark.parametrize('argv, message', [
    (['-o', 'out'], 'name the images, videos or folders to restore (or -i INPUT)'),
    (['x.png', '-o', 'out', '-s', '0'], '--outscale must be above 0 and at most 16, got 0.0'),
    (['x.png', '-o', 'out', '-s', 'nan'], '--outscale must be above 0 and at most 16, got nan'),
    (['x.png', '-o', 'out', '--suffix', 'a/b'], '--suffix a/b: a name part, not a path'),
])
def test_bad_real_esrgan_options_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
  _photo(tmp_path / 'x.png')
  monkeypatch.chdir(tmp_path)
  code, _, err = _run(capsys, *argv)
  assert code == 2 and err.strip().splitlines()[-1] == f'jdsr-restore: error: {message}', err
  assert not (tmp_path / 'out').exists()
