"""jdsr-app in a real browser: the distribution's headless Chromium, driven by Selenium.

The app runs as a user starts it (``python -m jdsr.cli.app``) on a free local port.
The test uploads a sample, restores it, downloads the result through the page
and compares it with ``jdsr-restore``'s output, byte for byte; uploads a
decompression bomb, sees the one-line refusal, and restores again. It saves a
screenshot of the page (``JDSR_SCREENSHOTS=docs/images`` puts it where
docs/usage.md shows it).

Without Chromium and ChromeDriver (Debian: ``apt-get install chromium
chromium-driver``) the test is skipped, unless ``JDSR_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, frames, png_bomb, write_clip  # noqa: E402
SAMPLE = ROOT / 'samples' / 'blurry' / 'chelsea.png'
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')

if not (CHROMIUM and CHROMEDRIVER) and os.environ.get('JDSR_REQUIRE_BROWSER') != '1':
  pytestmark = pytest.mark.skip(
      reason='needs chromium and chromedriver (apt-get install chromium chromium-driver)')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def app(tmp_path_factory):
  """The app's URL, its log, and its temporary folder's parent, while it runs."""
  tmp = tmp_path_factory.mktemp('app')
  port = _free_port()
  log = tmp / 'app.log'
  env = dict(os.environ, TMPDIR=str(tmp))
  with open(log, 'w') as out:
    proc = subprocess.Popen([sys.executable, '-m', 'jdsr.cli.app', '--port', str(port),
                             '--max_upload_mb', '1'],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
  url = f'http://127.0.0.1:{port}/'
  end = time.monotonic() + 300
  while 'serving on' not in log.read_text():
    assert proc.poll() is None, log.read_text()
    assert time.monotonic() < end, log.read_text()
    time.sleep(0.5)
  yield url, log, tmp
  proc.terminate()
  assert proc.wait(60) == 143, log.read_text()
  assert not list(tmp.glob('jdsr-app-*')), 'the app left its temporary folder behind'


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service

  downloads = tmp_path_factory.mktemp('downloads')
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic',
               '--no-first-run', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--window-size=1400,1000',
               f'--user-data-dir={tmp_path_factory.mktemp("profile")}'):
    options.add_argument(flag)
  options.add_experimental_option('prefs', {'download.default_directory': str(downloads),
                                            'download.prompt_for_download': False})
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  driver.downloads = downloads
  yield driver
  driver.quit()


def _wait(what, timeout=300, every=0.3):
  end = time.monotonic() + timeout
  while True:
    value = what()
    if value:
      return value
    assert time.monotonic() < end, f'timed out waiting for {what}'
    time.sleep(every)


def _upload(driver, path: pathlib.Path) -> None:
  from selenium.webdriver.common.by import By
  field = driver.find_element(By.CSS_SELECTOR, '#images-in input[type=file]')
  field.send_keys(str(path))
  _wait(lambda: driver.find_elements(By.CSS_SELECTOR, f'#images-in [aria-label="{path.name}"]'), 60)


def _clear_upload(driver) -> None:
  from selenium.webdriver.common.by import By
  driver.find_element(By.CSS_SELECTOR, '#images-in button[aria-label="Clear"]').click()
  _wait(lambda: not driver.find_elements(By.CSS_SELECTOR, '#images-in td.filename'), 30)


def _restore_and_download(driver, name: str) -> pathlib.Path:
  """Clicks Restore, waits for this job's result (the outputs are cleared first), downloads it."""
  from selenium.webdriver.common.by import By
  for old in driver.downloads.glob('*'):
    old.unlink()
  driver.find_element(By.ID, 'restore-images').click()
  _wait(lambda: not driver.find_element(By.ID, 'images-status').text.strip(), 30, every=0.05)
  _wait(lambda: 'restored in' in driver.find_element(By.ID, 'images-status').text)
  link = _wait(lambda: [a for a in driver.find_elements(By.CSS_SELECTOR, '#images-out a')
                        if (a.get_attribute('href') or '').endswith(name)])[0]
  link.click()
  downloaded = _wait(lambda: list(driver.downloads.glob(name)), 60)[0]
  _wait(lambda: not list(driver.downloads.glob('*.crdownload')), 60)
  return downloaded


@pytest.mark.slow  # a live app and a browser
def test_restore_download_refuse_and_restore_again(app, browser, tmp_path):
  from selenium.webdriver.common.by import By

  url, log, _ = app
  browser.get(url)
  _wait(lambda: browser.find_elements(By.ID, 'restore-images'), 60)

  # Restore the sample and download the result through the page.
  _upload(browser, SAMPLE)
  downloaded = _restore_and_download(browser, 'chelsea_x4.png')

  expected = tmp_path / 'chelsea_x4.png'
  subprocess.run([sys.executable, '-m', 'jdsr.cli.restore', str(SAMPLE), '-o', str(expected), '-q'],
                 cwd=ROOT, check=True, capture_output=True)
  assert downloaded.read_bytes() == expected.read_bytes()

  # The page shows the before/after slider: keep a picture of it.
  _wait(lambda: browser.find_elements(By.CSS_SELECTOR, '#compare img'), 60)
  screenshot = tmp_path / 'app.png'
  browser.save_screenshot(str(screenshot))
  assert screenshot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  if os.environ.get('JDSR_SCREENSHOTS'):
    shutil.copy(screenshot, ROOT / os.environ['JDSR_SCREENSHOTS'] / 'app.png')

  # A decompression bomb: one line in the page, no traceback.
  _clear_upload(browser)
  _upload(browser, png_bomb(tmp_path / 'bomb.png'))
  browser.find_element(By.ID, 'restore-images').click()
  message = 'bomb.png: the output would be 24000x24000 (576.0 megapixels), more than the limit'
  _wait(lambda: message in browser.find_element(By.TAG_NAME, 'body').text, 120)
  page = browser.find_element(By.TAG_NAME, 'body').text
  assert 'Traceback' not in page and 'Traceback' not in log.read_text()

  # The app goes on serving: restore the sample again.
  for close in browser.find_elements(By.CSS_SELECTOR, '.toast-close'):
    close.click()
  _clear_upload(browser)
  _upload(browser, SAMPLE)
  again = _restore_and_download(browser, 'chelsea_x4.png')
  assert again.read_bytes() == expected.read_bytes()


@pytest.mark.slow  # a live app and a browser
def test_the_app_listens_on_this_computer_only(app):
  port = int(app[0].rsplit(':', 1)[1].strip('/'))
  listening = set()
  for table in ('/proc/net/tcp', '/proc/net/tcp6'):
    for line in pathlib.Path(table).read_text().splitlines()[1:]:
      local, state = line.split()[1], line.split()[3]
      address, local_port = local.split(':')
      if state == '0A' and int(local_port, 16) == port:  # LISTEN
        listening.add(address)
  assert listening == {'0100007F'}, listening  # 127.0.0.1 only


@pytest.mark.slow  # a live app and a browser
def test_jobs_run_one_at_a_time_and_a_waiting_job_sees_its_place(app, tmp_path):
  from gradio_client import Client, handle_file
  from PIL import Image

  large = tmp_path / 'large.png'
  Image.open(SAMPLE).convert('RGB').resize((512, 320)).save(large)
  client = Client(app[0], verbose=False, download_files=str(tmp_path / 'client'))
  first = client.submit([handle_file(str(large))], True, True, api_name='/restore_images')
  _wait(lambda: str(first.status().code) == 'Status.PROGRESS', 120, every=0.05)
  second = client.submit([handle_file(str(SAMPLE))], True, False, api_name='/restore_images')
  places = set()
  while not second.done():
    status = second.status()
    if str(status.code) == 'Status.IN_QUEUE' and status.rank is not None:
      places.add((status.rank, status.queue_size))
    time.sleep(0.05)
  assert (0, 1) in places, places  # first in line, one job waiting
  assert first.result()[3].startswith('1 restored') and second.result()[3].startswith('1 restored')


@pytest.mark.slow  # a live app and a browser
def test_a_path_the_browser_names_is_refused_in_one_line(app):
  import json
  import urllib.request

  call = app[0] + 'gradio_api/call/restore_images'
  body = json.dumps({'data': [[{'path': str(SAMPLE), 'meta': {'_type': 'gradio.FileData'}}],
                              True, False]}).encode()
  request = urllib.request.Request(call, body, {'Content-Type': 'application/json'})
  with urllib.request.urlopen(request, timeout=60) as answer:
    event = json.load(answer)['event_id']
  with urllib.request.urlopen(f'{call}/{event}', timeout=120) as answer:
    stream = answer.read().decode()
  assert stream.startswith('event: error') and 'not uploaded' in stream, stream
  assert 'Traceback' not in stream


@pytest.mark.slow  # a live app and a browser
def test_an_upload_over_the_limit_is_refused(app):
  import urllib.error
  import urllib.request

  boundary = 'jdsr-test-boundary'
  body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"'
          '\r\nContent-Type: image/png\r\n\r\n').encode() + bytes(2 * 2**20) + (
              f'\r\n--{boundary}--\r\n').encode()
  request = urllib.request.Request(app[0] + 'gradio_api/upload', body, {
      'Content-Type': f'multipart/form-data; boundary={boundary}'})
  with pytest.raises(urllib.error.HTTPError) as refused:
    urllib.request.urlopen(request, timeout=60)
  assert refused.value.code == 413  # --max_upload_mb 1


@pytest.mark.slow  # a live app and a browser
def test_a_video_is_restored_with_its_audio_through_the_app(app, tmp_path):
  import av
  from gradio_client import Client, handle_file

  clip = tmp_path / 'talk.mp4'
  write_clip(clip, frames(3, 112, 72), codec='libx264', pix_fmt='yuv420p', fps=8, audio=True)
  client = Client(app[0], verbose=False, download_files=str(tmp_path / 'client'))
  restored, status = client.predict(handle_file(str(clip)), True, False,
                                    api_name='/restore_video')
  assert pathlib.Path(restored).name == 'talk_x4.mp4' and status.startswith('restored in')
  with av.open(restored) as out:
    assert [s.type for s in out.streams] == ['video', 'audio']
    assert out.streams.video[0].width == 448


@pytest.mark.slow  # a live app and a browser
def test_finished_jobs_leave_no_inputs_behind(app):
  left = [p for p in app[2].glob('jdsr-app-*/jobs/*/in')]
  uploaded = {SAMPLE.name, 'bomb.png', 'large.png', 'talk.mp4'}  # what the tests above upload
  uploads = [p for p in app[2].glob('jdsr-app-*/uploads/**/*') if p.name in uploaded]
  assert left == [] and uploads == [], (left, uploads)
