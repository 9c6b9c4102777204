"""jdsr-app's work without the page (jdsr/app/jobs.py): what it writes, refuses and leaves behind.

The tests restore with the demo model, as the app does by default (in the full tier). What the
served page does (the browser, the queue, the bound address) is in
tests/app/test_app_browser.py.
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image, ImageFile

import jdsr
from jdsr.app import jobs
from jdsr.cli import app as app_cli
from jdsr.cli import restore as restore_cli
from jdsr.inference import restore
from jdsr.nn import layers
from tests.helpers import frames, png_bomb, write_clip

from tests.helpers import ROOT  # noqa: E402
SAMPLE = ROOT / 'samples' / 'blurry' / 'chelsea.png'


@pytest.fixture(scope='module')
def model():
  return jdsr.load(jdsr.DEMO_MODEL)


@pytest.fixture
def app(model, tmp_path):
  workspace = jobs.Workspace(tmp_path)
  yield jobs.Restorer(model, restore.Options(), workspace)
  workspace.close()


def _upload(restorer: jobs.Restorer, path: pathlib.Path) -> tuple[str, str]:
  """``path`` as Gradio hands an upload over: a copy under the uploads folder, and its name."""
  folder = restorer.workspace.uploads / path.stem
  folder.mkdir(exist_ok=True)
  shutil.copy(path, folder / path.name)
  return str(folder / path.name), path.name


def _gray16(path: pathlib.Path) -> pathlib.Path:
  y, x = np.mgrid[0:40, 0:56]
  Image.fromarray((x * 1000 + y * 300).astype(np.uint16)).save(path)
  return path


@pytest.mark.slow
@pytest.mark.parametrize('tlsc,ensemble,make', [
    (True, False, lambda tmp: SAMPLE),
    (False, True, lambda tmp: _gray16(tmp / 'gray16.png')),
])
def test_the_download_is_what_jdsr_restore_writes(app, tmp_path, tlsc, ensemble, make):
  source = make(tmp_path)
  job = app.workspace.new_job()
  (result,), failures = app.images([_upload(app, source)], job, tlsc=tlsc, ensemble=ensemble)
  assert failures == [] and result.name == source.stem
  expected = tmp_path / 'cli.png'
  args = [str(source), '-o', str(expected), '-q'] + ([] if tlsc else ['--notlsc']) + (
      ['--ensemble'] if ensemble else [])
  assert restore_cli.main(args) == 0
  assert result.download.read_bytes() == expected.read_bytes()
  with Image.open(result.bicubic) as before, Image.open(result.download) as after:
    assert before.mode == 'RGB' and before.size == after.size
    assert after.size == tuple(4 * s for s in Image.open(source).size)


@pytest.mark.slow
def test_a_decompression_bomb_is_refused_from_its_header(app, tmp_path, monkeypatch):
  def never(self, *args):
    raise AssertionError('the image was decoded')
  monkeypatch.setattr(ImageFile.ImageFile, 'load', never)
  job = app.workspace.new_job()
  with pytest.raises(jobs.Refused) as refused:
    app.images([_upload(app, png_bomb(tmp_path / 'bomb.png'))], job, tlsc=True, ensemble=False)
  message = str(refused.value)
  assert message == ('bomb.png: the output would be 24000x24000 (576.0 megapixels), more than '
                     'the limit of 256.0; start jdsr-app with a larger --max_output_megapixels '
                     'if you have the memory')
  assert not (job / 'in').exists(), 'the inputs of a finished job are removed'


@pytest.mark.slow
def test_a_path_that_was_not_uploaded_is_never_opened(app, tmp_path, monkeypatch):
  secret = tmp_path / 'secret.png'
  shutil.copy(SAMPLE, secret)
  link = app.workspace.uploads / 'link.png'
  link.symlink_to(secret)
  opened = []
  real_copy = shutil.copyfile
  monkeypatch.setattr(shutil, 'copyfile', lambda a, b, **k: opened.append(a) or real_copy(a, b))
  job = app.workspace.new_job()
  for path in (str(secret), str(app.workspace.uploads / '..' / '..' / secret.name), str(link),
               '/etc/hostname', str(app.workspace.uploads)):
    with pytest.raises(jobs.Refused, match='not a file uploaded to this app'):
      app.images([(path, 'x.png')], job, tlsc=True, ensemble=False)
  assert opened == [] and secret.exists()


@pytest.mark.slow
def test_a_failure_is_one_line_and_the_next_job_is_done(app, tmp_path):
  broken = tmp_path / 'broken.png'
  broken.write_bytes(SAMPLE.read_bytes()[:300])
  text = tmp_path / 'notes.txt'
  text.write_text('not an image')
  with pytest.raises(jobs.Refused) as refused:
    app.images([_upload(app, broken), _upload(app, text)], app.workspace.new_job(),
               tlsc=True, ensemble=False)
  message = str(refused.value)
  assert '\n' not in message and str(app.workspace.root) not in message, message
  assert message.startswith('broken.png: cannot read image') and 'notes.txt: not an image' in message
  # One bad file among good ones: the good ones are restored, the bad one named.
  results, failures = app.images([_upload(app, broken), _upload(app, SAMPLE)],
                                 app.workspace.new_job(), tlsc=True, ensemble=False)
  assert [r.name for r in results] == ['chelsea'] and failures[0].startswith('broken.png: ')


@pytest.mark.slow
def test_a_large_image_reports_its_tiles(app, tmp_path):
  large = tmp_path / 'large.png'
  Image.open(SAMPLE).convert('RGB').resize((300, 264)).save(large)
  reports = []
  app.images([_upload(app, large)], app.workspace.new_job(), tlsc=True, ensemble=False,
             report=lambda done, total, what: reports.append((done, total, what)))
  tiles = [(done, total) for done, total, what in reports if what == 'large: tiles']
  assert tiles == [(1, 4), (2, 4), (3, 4), (4, 4)], reports


@pytest.mark.slow
def test_workspace_keeps_results_until_dropped_and_is_removed_on_close(model, tmp_path,
                                                                       monkeypatch):
  made = []
  real = restore.Options.model
  monkeypatch.setattr(restore.Options, 'model',
                      lambda self, *a, **k: made.append('announce' in k) or real(self, *a, **k))
  workspace = jobs.Workspace(tmp_path)
  restorer = jobs.Restorer(model, restore.Options(), workspace)
  upload, name = _upload(restorer, SAMPLE)
  job = workspace.new_job()
  (result,), _ = restorer.images([(upload, name)], job, tlsc=True, ensemble=False)
  assert not pathlib.Path(upload).exists() and not (job / 'in').exists()
  assert result.download.exists()
  restorer.images([_upload(restorer, SAMPLE)], workspace.new_job(), tlsc=True, ensemble=True)
  # The model is prepared once (a runtime's engine is made there), not per job.
  assert made.count(True) == 1
  workspace.drop(tmp_path)  # only job folders are ever removed
  assert tmp_path.exists()
  workspace.drop(job)
  assert not job.exists()
  workspace.close()
  assert list(tmp_path.iterdir()) == []


def test_names_sent_by_the_browser_become_safe_file_names():
  assert jobs.safe_stem('../../etc/passwd') == 'passwd'
  assert jobs.safe_stem('..\\..\\x y.png') == 'x_y'
  assert jobs.safe_stem('.hidden.png') == 'hidden'
  assert jobs.safe_stem('...') == 'image'


@pytest.mark.slow
def test_a_video_is_restored_with_its_audio_and_frame_progress(app, tmp_path):
  import av
  clip = tmp_path / 'talk.mp4'
  write_clip(clip, frames(4, 112, 72), codec='libx264', pix_fmt='yuv420p', fps=8, audio=True)
  reports = []
  target = app.video(_upload(app, clip), app.workspace.new_job(), tlsc=True, ensemble=False,
                     report=lambda done, total, what: reports.append((done, total, what)))
  assert target.name == 'talk_x4.mp4'
  with av.open(str(target)) as out:
    assert [s.type for s in out.streams] == ['video', 'audio']
    assert (out.streams.video[0].width, out.streams.video[0].height) == (448, 288)
  assert [(d, t) for d, t, what in reports if what == 'talk: frames'] == [(i, 4) for i in range(1, 5)]


@pytest.mark.slow
def test_a_video_too_large_is_refused_from_its_header(model, tmp_path, monkeypatch):
  import av
  workspace = jobs.Workspace(tmp_path)
  restorer = jobs.Restorer(model, restore.Options(max_output_megapixels=0.1), workspace)
  monkeypatch.setattr(av.container.InputContainer, 'decode',
                      lambda *a, **k: pytest.fail('a frame was decoded'))
  with pytest.raises(jobs.Refused, match=r'^clip.mp4: the output would be 448x288 '):
    restorer.video(_upload(restorer, ROOT / 'samples' / 'clip.mp4'), workspace.new_job(),
                   tlsc=True, ensemble=False)
  workspace.close()


def test_the_app_binds_to_this_computer_by_default():
  args = app_cli.parse_args([])
  assert (args.host, args.port, args.runtime) == ('127.0.0.1', 7860, 'jax')
  args = app_cli.parse_args(['--checkpoint', 'm.pth', '--config', 'model1', '--runtime',
                             'openvino', '--host', '0.0.0.0', '--port', '8000'])
  assert (args.checkpoint, args.config, args.runtime, args.host, args.port) == (
      'm.pth', 'model1', 'openvino', '0.0.0.0', 8000)


@pytest.mark.slow
def test_a_runtime_that_is_not_installed_is_one_line(model, tmp_path, monkeypatch):
  from jdsr.inference import runtimes

  def missing(*args, **kwargs):
    raise runtimes.RuntimeMissing("openvino is not installed: pip install '.[openvino]' in "
                                  "jdsr's folder")
  monkeypatch.setattr(runtimes, 'engine', missing)
  workspace = jobs.Workspace(tmp_path)
  with pytest.raises(jobs.Refused, match=r"^openvino is not installed: pip install '\.\[openvino\]' in jdsr's folder$"):
    jobs.Restorer(model, restore.Options(runtime='openvino', tlsc=layers.TLSC()), workspace)
  workspace.close()


def test_without_gradio_the_app_says_which_extra_in_one_line(monkeypatch, capsys):
  monkeypatch.setitem(__import__('sys').modules, 'gradio', None)
  assert app_cli.main(['--port', '0']) == 1
  assert capsys.readouterr().err == "jdsr-app: error: the app needs Gradio: pip install '.[app]' in jdsr's folder\n"


def test_bad_options_are_usage_errors(capsys):
  assert app_cli.main(['--port', '70000']) == 2
  assert app_cli.main(['--max_output_megapixels', 'nan']) == 2
  err = capsys.readouterr().err
  assert 'jdsr-app: error: --port must be 0 to 65535, got 70000' in err
  assert 'jdsr-app: error: --max_output_megapixels must be a finite number above 0' in err
