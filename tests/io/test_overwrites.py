"""Nothing a user had is lost: overwrites write beside and swap, outputs never replace others' files.

Data-loss tests compare the victims' bytes before and after.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import numpy as np
import pytest

import jdsr
from jdsr.cli import convert as convert_cli
from jdsr.cli import export as export_cli
from jdsr.cli import restore as restore_cli

from tests.helpers import ROOT  # noqa: E402
PHOTO = ROOT / 'samples' / 'blurry' / 'chelsea.png'


def _files(folder: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
          if p.is_file()}


def _fill(disk: pathlib.Path, leave: int) -> None:
  free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
  (disk / 'filler').write_bytes(bytes(max(free - leave, 0)))


def _last_line(err: str) -> str:
  lines = [line for line in err.strip().splitlines() if line.strip()]
  assert len(lines) <= 2 and not any('Traceback' in line for line in lines), err[-3000:]
  return lines[-1]


@pytest.mark.slow
def test_convert_overwrite_on_a_full_disk_leaves_the_old_checkpoint(small_disk, capsys):
  target = small_disk / 'ckpt'
  jdsr.save(jdsr.load(jdsr.DEMO_MODEL), target)
  before = _files(target)
  _fill(small_disk, 256 * 1024)  # less than the 1.4 MB the new checkpoint needs
  code = convert_cli.main(['--out', str(target), '--overwrite'])
  err = capsys.readouterr().err
  assert code == 1
  assert _last_line(err).startswith(f'jdsr-convert: error: could not write the checkpoint {target}')
  assert 'the old one is untouched' in err
  assert _files(target) == before
  assert sorted(p.name for p in small_disk.iterdir()) == ['ckpt', 'filler']  # no leftovers
  (small_disk / 'filler').unlink()
  assert convert_cli.main(['--out', str(target), '--overwrite']) == 0  # with room, it replaces
  assert jdsr.load(target).config == jdsr.load(jdsr.DEMO_MODEL).config


@pytest.mark.slow
def test_export_overwrite_on_a_full_disk_leaves_the_old_export(small_disk, capsys):
  target = small_disk / 'exported'
  assert export_cli.main(['--out', str(target), '--no_saved_model', '--platforms', 'cpu']) == 0
  before = _files(target)
  _fill(small_disk, 64 * 1024)
  assert export_cli.main(['--out', str(target), '--no_saved_model', '--platforms', 'cpu',
                          '--overwrite']) == 1
  assert _last_line(capsys.readouterr().err).startswith('jdsr-export: error:')
  assert _files(target) == before
  assert sorted(p.name for p in small_disk.iterdir()) == ['exported', 'filler']


def test_save_overwrite_writes_beside_then_swaps(tmp_path, monkeypatch):
  target = tmp_path / 'ckpt'
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), 0), target)
  before = _files(target)
  # A write that fails midway, wherever it fails: the old checkpoint stays as it was.
  import orbax.checkpoint as ocp

  def broken_save(self, directory, *args, **kwargs):
    pathlib.Path(directory).mkdir()
    (pathlib.Path(directory) / 'half').write_bytes(b'x')
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(ocp.Checkpointer, 'save', broken_save)
  with pytest.raises(jdsr.CheckpointError, match='No space left on device.*old one is untouched'):
    jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), 1), target, overwrite=True)
  assert _files(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ['ckpt']


def test_convert_onto_an_existing_output_names_the_option(tmp_path, capsys):
  target = tmp_path / 'ckpt'
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), 0), target)
  assert convert_cli.main(['--checkpoint', str(target), '--out', str(target.with_name('c2'))]) == 0
  capsys.readouterr()
  assert convert_cli.main(['--checkpoint', str(target), '--out', str(tmp_path / 'c2')]) == 1
  assert _last_line(capsys.readouterr().err) == (
      f'jdsr-convert: error: {tmp_path / "c2"} exists; pass --overwrite to replace it')


def test_restore_refuses_a_file_it_would_replace(tmp_path, capsys):
  users = tmp_path / 'mine.png'
  shutil.copy(ROOT / 'samples' / 'sharp' / 'rocket.png', users)
  before = users.read_bytes()
  assert restore_cli.main([str(PHOTO), '-o', str(users), '-q']) == 1
  assert _last_line(capsys.readouterr().err) == (
      f'jdsr-restore: error: {users}: exists; pass --overwrite to replace it')
  assert users.read_bytes() == before
  # Into a folder: the existing output is refused, the others are done. The photos are of one
  # size: the model compiles once.
  photos, out = tmp_path / 'photos', tmp_path / 'out'
  photos.mkdir()
  for name in ('a.png', 'b.png', 'chelsea.png'):
    shutil.copy(PHOTO, photos / name)
  out.mkdir()
  (out / 'chelsea.png').write_bytes(before)
  assert restore_cli.main([str(photos), '-o', str(out), '-q']) == 1
  assert (out / 'chelsea.png').read_bytes() == before
  assert sorted(p.name for p in out.iterdir()) == ['a.png', 'b.png', 'chelsea.png']
  assert restore_cli.main([str(PHOTO), '-o', str(users), '-q', '--overwrite']) == 0
  assert users.read_bytes() != before


def test_restore_into_its_input_folder_is_refused(tmp_path, capsys):
  photos = tmp_path / 'photos'
  shutil.copytree(PHOTO.parent, photos)
  before = _files(photos)
  for output in (photos, tmp_path / 'photos' / '.' ):
    assert restore_cli.main([str(photos), '-o', str(output), '-q']) == 2
    assert 'that is an input folder' in _last_line(capsys.readouterr().err)
  assert _files(photos) == before


@pytest.mark.parametrize('value', ['nan', 'inf', '-1', '0'])
def test_max_output_megapixels_must_be_finite_and_positive(tmp_path, capsys, value):
  assert restore_cli.main([str(PHOTO), '-o', str(tmp_path / 'x.png'),
                           f'--max_output_megapixels={value}']) == 2
  assert _last_line(capsys.readouterr().err).startswith(
      'jdsr-restore: error: --max_output_megapixels must be a finite number above 0')
  assert not (tmp_path / 'x.png').exists()
  with pytest.raises(ValueError, match='finite number above 0'):
    jdsr.inference.restore.Options(max_output_megapixels=float(value))
  assert np.isfinite(jdsr.inference.restore.Options().max_output_megapixels)
