"""The page of ``jdsr-app``: Gradio around ``jdsr.app.jobs``.

Two tabs. Images: upload one or more, choose TLSC and the ×8 ensemble,
compare bicubic ×4 with jdsr ×4 on a before/after slider (one image at a
time, chosen in a list), download the results. Video: upload a clip, download
the restored clip. Uploads are ``gr.File``s, so the page never decodes an
image itself: the size limit is checked from the header before decoding.

Jobs run one at a time through Gradio's queue, which shows a waiting page its
place and a running job's progress (tiles, frames). A failure is raised as
``gr.Error`` with one line, which the page shows; the app goes on serving.
"""

from __future__ import annotations

import logging
import pathlib
import sys
import time

import gradio as gr

from jdsr.app import jobs
from jdsr.errors import one_line
from jdsr.io import imagefile, outputs

log = logging.getLogger(__name__)

TITLE = 'jdsr: deblur and upscale ×4'
DELETE_CACHE = (600, 3600)  # every 10 minutes, Gradio's copies older than an hour go


def build(restorer: jobs.Restorer, *, checkpoint: str) -> gr.Blocks:
  """The app's page; ``launch`` serves it."""
  workspace = restorer.workspace

  def run_images(files, tlsc, ensemble, previous_job, progress=gr.Progress()):
    workspace.drop(previous_job)
    workspace.clean_uploads(older_than=DELETE_CACHE[1])
    job = workspace.new_job()
    start = time.perf_counter()
    uploads = [(_path(f), _original_name(f)) for f in (files or [])]
    try:
      results, failures = restorer.images(uploads, job, tlsc=tlsc, ensemble=ensemble,
                                          report=_reporter(progress))
    except Exception as e:  # noqa: BLE001 - every failure is one line in the page
      workspace.drop(job)
      raise _error(e) from None
    for message in failures:
      gr.Warning(message)
    names = [r.name for r in results]
    status = (f'{len(results)} restored in {time.perf_counter() - start:.1f} s'
              + (f'; {len(failures)} failed: ' + '; '.join(failures) if failures else ''))
    return (_compare(results[0]), gr.update(choices=names, value=names[0],
                                            visible=len(results) > 1),
            [str(r.download) for r in results], status, job,
            {r.name: _compare(r) for r in results})

  def show(name, previews):
    if not previews or name not in previews:
      return gr.update()
    return previews[name]

  def run_video(file, tlsc, ensemble, previous_job, progress=gr.Progress()):
    workspace.drop(previous_job)
    job = workspace.new_job()
    start = time.perf_counter()
    try:
      if not file:
        raise jobs.Refused('choose a video first')
      target = restorer.video((_path(file), _original_name(file)), job, tlsc=tlsc,
                              ensemble=ensemble, report=_reporter(progress))
    except Exception as e:  # noqa: BLE001
      workspace.drop(job)
      raise _error(e) from None
    return str(target), f'restored in {time.perf_counter() - start:.1f} s', job

  image_types = sorted(set(imagefile.IMAGE_SUFFIXES))
  with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=DELETE_CACHE) as page:
    gr.Markdown(f'## {TITLE}\nModel: `{checkpoint}`. Jobs run one at a time; a waiting job '
                'shows its place in the queue.')
    with gr.Tab('Images'):
      with gr.Row():
        with gr.Column(scale=1):
          files = gr.File(label='Images', file_count='multiple', file_types=image_types,
                          elem_id='images-in')
          tlsc = gr.Checkbox(value=True, label="TLSC (the paper's Model-3)")
          ensemble = gr.Checkbox(value=False, label='×8 self-ensemble (8 times slower)')
          go = gr.Button('Restore', variant='primary', elem_id='restore-images')
          status = gr.Markdown(elem_id='images-status')
        with gr.Column(scale=2):
          slider = gr.ImageSlider(label='bicubic ×4 | jdsr ×4', type='filepath', format='png',
                                  interactive=False, elem_id='compare', max_height=700)
          which = gr.Dropdown(label='Compare', choices=[], visible=False, elem_id='compare-which')
          download = gr.File(label='Download', file_count='multiple', interactive=False,
                             elem_id='images-out')
      image_job = gr.State(None, delete_callback=workspace.drop)  # a closed page's results go
      previews = gr.State({})
      go.click(lambda: (None, None, ''), None, [slider, download, status], queue=False,
               api_name=False).then(
          run_images, [files, tlsc, ensemble, image_job],
               [slider, which, download, status, image_job, previews],
               api_name='restore_images', concurrency_id='model')
      which.change(show, [which, previews], slider, api_name=False, queue=False)
    with gr.Tab('Video'):
      with gr.Row():
        with gr.Column():
          clip = gr.File(label='Video', file_types=sorted(outputs.VIDEO_SUFFIXES),
                         elem_id='video-in')
          video_tlsc = gr.Checkbox(value=True, label="TLSC (the paper's Model-3)")
          video_ensemble = gr.Checkbox(value=False, label='×8 self-ensemble (8 times slower)')
          go_video = gr.Button('Restore', variant='primary', elem_id='restore-video')
        with gr.Column():
          video_out = gr.File(label='Download', interactive=False, elem_id='video-out')
          video_status = gr.Markdown(elem_id='video-status')
      video_job = gr.State(None, delete_callback=workspace.drop)
      go_video.click(lambda: (None, ''), None, [video_out, video_status], queue=False,
                     api_name=False).then(
          run_video, [clip, video_tlsc, video_ensemble, video_job],
                     [video_out, video_status, video_job], api_name='restore_video',
                     concurrency_id='model')
  return page


def _path(file) -> str:
  """The server-side path of an uploaded file as Gradio hands it over (str or FileData)."""
  return str(getattr(file, 'path', file))


def _original_name(file) -> str | None:
  return getattr(file, 'orig_name', None) or pathlib.Path(_path(file)).name


def _compare(result: jobs.ImageResult) -> tuple[str, str]:
  return str(result.bicubic), str(result.download)


def _reporter(progress: gr.Progress) -> jobs.Report:
  def report(done: int, total: int | None, what: str) -> None:
    if total is None:
      progress(0, desc=what)
    else:
      progress((done, total), desc=what, unit=what.rsplit(': ', 1)[-1])
  return report


def _error(e: BaseException) -> gr.Error:
  """``gr.Error`` with one line; an unexpected error is logged (one line) on the server too."""
  if isinstance(e, jobs.Refused):
    return gr.Error(str(e), duration=None, print_exception=False)
  print(f'jdsr-app: error: {one_line(e, kind=True)}', file=sys.stderr)
  return gr.Error(f'unexpected error: {one_line(e, kind=True)}', duration=None,
                  print_exception=False)
