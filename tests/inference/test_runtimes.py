"""The ONNX file made from jdsr's JAX program, and the runtimes that run it (ONNX Runtime, OpenVINO).

The demo model's ONNX files (with and without TLSC) are made once for the module,
in a cache folder of its own, and agree with ``jdsr.apply`` at sizes no other test
uses. Then what rests on them: ``restore`` on every runtime (tiles, the ×8
ensemble), ``eval.py``'s scores across runtimes, the cache (kept, and rebuilt
when stale or damaged), a runtime that is not installed, and the CLI options.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

import jdsr
from jdsr.checkpoints import onnx as onnx_lib
from jdsr.cli import restore as restore_cli
from jdsr.inference import restore as restore_lib
from jdsr.inference import runtimes
from jdsr.io import imagefile
from tests import docs

# Run before a snippet: jdsr, jax and flax cannot be imported, so it needs a runtime alone.
WITHOUT_JDSR = "import sys\nsys.modules.update(jdsr=None, jax=None, flax=None)\n"


from tests.helpers import ROOT  # noqa: E402
TLSCS = {'tlsc': jdsr.TLSC(), 'notlsc': None}


@pytest.fixture(scope='module')
def demo(demo_model) -> jdsr.JDSR:
  return demo_model


@pytest.fixture(scope='module')
def cache(onnx_cache) -> pathlib.Path:
  """The session's ONNX cache: the demo model is converted once, here or by another test."""
  return onnx_cache


@pytest.fixture(scope='module')
def onnx_files(demo, cache) -> dict[str, pathlib.Path]:
  return {name: runtimes.cached_onnx(demo, tlsc, cache) for name, tlsc in TLSCS.items()}


def _reference(demo, x: np.ndarray, tlsc) -> np.ndarray:
  return np.asarray(jdsr.apply(demo, x, tlsc=tlsc)[1])


@pytest.mark.slow
def test_the_graph_is_nchw_flat_and_dynamic(onnx_files):
  import onnx

  proto = onnx.load(str(onnx_files['tlsc']))
  onnx.checker.check_model(proto)
  dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
  (x,), (sr,) = proto.graph.input, proto.graph.output
  assert (x.name, dims(x), sr.name, dims(sr)) == ('x', ['N', 3, 'H', 'W'], 'sr', ['N', 3, '4*H', '4*W'])
  assert [o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')] == [onnx_lib.OPSET]
  ops = [n.op_type for n in proto.graph.node]
  # One Conv per convolution, no layout change around them (the one Transpose is the pixel
  # shuffle), no loops: what lets the runtimes fuse and choose their layouts.
  assert ops.count('Conv') == 294 and ops.count('Transpose') == 1
  assert not {'Loop', 'Scan', 'If'} & set(ops)
  assert 'CumSum' not in ops  # TLSC's local means are products with band matrices (MatMul)
  # Each weight once, though stages 1 and 2 run their encoders on quarters and halves.
  from onnx import numpy_helper
  stored = sum(numpy_helper.to_array(t).nbytes for t in proto.graph.initializer)
  demo_params = nnx.state(jdsr.load(jdsr.DEMO_MODEL), nnx.Param)
  params = sum(np.asarray(p).nbytes for p in jax.tree.leaves(demo_params))
  assert 0.98 * params <= stored <= 1.02 * params, (stored, params)
  meta = {p.key: p.value for p in proto.metadata_props}
  assert json.loads(meta['tlsc']) == {'base_size': [96, 96], 'train_size': [64, 64]}
  assert json.loads(meta['model_config']) == onnx_lib.architecture(jdsr.load(jdsr.DEMO_MODEL))


@pytest.mark.slow
@pytest.mark.parametrize('name', TLSCS)
@pytest.mark.parametrize('runtime', ['onnxruntime', 'openvino'])
def test_the_runtimes_compute_what_jdsr_computes(demo, onnx_files, runtime, name):
  run = runtimes.load(onnx_files[name], runtime, 'float32')
  x = np.random.default_rng(0).random((2, 48, 40, 3), np.float32)  # a size no other test uses
  out = run(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).transpose(0, 2, 3, 1)
  np.testing.assert_allclose(out, _reference(demo, x, TLSCS[name]), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_sizes_that_are_not_multiples_of_8_fail_in_the_graph(onnx_files):
  run = runtimes.load(onnx_files['notlsc'], 'onnxruntime')
  with pytest.raises(Exception, match='(?i)reshape'):
    run(np.zeros((1, 3, 36, 40), np.float32))


@pytest.mark.slow
def test_openvino_bf16_stays_close_to_fp32(demo, onnx_files):
  if not runtimes.bf16_supported():
    pytest.skip('this CPU has no native bfloat16')
  x = np.random.default_rng(3).random((1, 64, 64, 3), np.float32).transpose(0, 3, 1, 2).copy()
  fp32 = runtimes.load(onnx_files['tlsc'], 'openvino', 'float32')(x)
  bf16 = runtimes.load(onnx_files['tlsc'], 'openvino', 'bfloat16')(x)
  psnr = 10 * np.log10(1 / np.mean((np.clip(bf16, 0, 1) - np.clip(fp32, 0, 1)) ** 2))
  assert 35 < psnr < 80  # close, and not the same program


@pytest.mark.slow
@pytest.mark.parametrize('runtime', ['onnxruntime', 'openvino'])
def test_restore_tiles_and_ensemble_are_the_same_on_a_runtime(demo, cache, runtime):
  image = np.random.default_rng(5).random((70, 90, 3), np.float32)  # padded, then tiled
  for options in (restore_lib.Options(tile=48, overlap=16), restore_lib.Options(ensemble=True)):
    expected = restore_lib.restore(demo, image, options)
    options = dataclasses.replace(options, runtime=runtime, cache_dir=str(cache), dtype='float32')
    got = restore_lib.restore(options.model(demo), image, options)
    assert got.shape == expected.shape == (280, 360, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_eval_scores_agree_across_runtimes(demo, cache, tmp_path):
  from configs import eval_demo
  from jdsr.evaluation import evaluate

  config = eval_demo.get_config()
  items = evaluate.folder_items(config.input_dir, config.target_dir)
  scores = {}
  runs = [('jax', None), ('onnxruntime', None), ('openvino', 'float32')]
  if runtimes.bf16_supported():
    runs.append(('openvino', 'bfloat16'))
  for runtime, dtype in runs:
    options = restore_lib.Options(runtime=runtime, dtype=dtype, cache_dir=str(cache))
    summary = evaluate.evaluate(demo, items, tmp_path / f'{runtime}-{dtype}', options,
                                save_images=False, save_figures=False, progress=False)
    assert summary['settings']['runtime'] == runtime
    scores[runtime, dtype] = summary['mean']['psnr']
  reference = scores['jax', None]
  for (runtime, dtype), psnr in scores.items():
    assert abs(psnr - reference) <= (0.1 if dtype == 'bfloat16' else 0.01), scores


@pytest.mark.slow
def test_the_cache_is_kept_and_a_damaged_or_stale_file_is_made_again(tmp_path):
  tiny = jdsr.build_model(jdsr.tiny_model_config(), 0)  # the fastest to convert
  told = []
  path = runtimes.cached_onnx(tiny, None, tmp_path, told.append)
  assert len(told) == 1 and 'converting' in told[0]
  before = path.stat().st_mtime_ns
  assert runtimes.cached_onnx(tiny, None, tmp_path, told.append) == path
  assert len(told) == 1 and path.stat().st_mtime_ns == before  # taken from the cache

  good = path.read_bytes()
  damaged = bytearray(good)
  damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte in the weights
  path.write_bytes(bytes(damaged))
  assert runtimes.cached_onnx(tiny, None, tmp_path, told.append) == path
  assert 'damaged or stale' in told[1] and path.read_bytes() == good

  record = path.with_suffix('.json')
  record.write_text(json.dumps({**json.loads(record.read_text()), 'key': 'another model'}))
  runtimes.cached_onnx(tiny, None, tmp_path, told.append)
  assert 'damaged or stale' in told[3] and path.read_bytes() == good
  engine = runtimes.engine(tiny, 'onnxruntime', tlsc=None, cache_dir=tmp_path)
  assert engine(np.zeros((1, 16, 16, 3), np.float32)).shape == (1, 64, 64, 3)
  assert len(told) == 5  # the last from the cache: nothing said


def test_other_weights_or_tlsc_are_another_file(demo, tmp_path):
  from jdsr.nn.model import model_config_of
  other = jdsr.build_model(model_config_of(demo), 1)
  keys = {runtimes.cache_key(demo, None), runtimes.cache_key(demo, jdsr.TLSC()),
          runtimes.cache_key(other, None), runtimes.cache_key(demo, jdsr.TLSC(base_size=(128, 128)))}
  assert len(keys) == 4


@pytest.mark.parametrize('runtime, extra', [('openvino', 'openvino'), ('onnxruntime', 'onnx')])
def test_a_runtime_that_is_not_installed_is_one_line(demo, monkeypatch, capsys, tmp_path, runtime,
                                                     extra):
  monkeypatch.setitem(sys.modules, runtime, None)  # import fails as if not installed
  with pytest.raises(runtimes.RuntimeMissing, match=rf"pip install '\.\[{extra}\]' in jdsr's folder"):
    runtimes.engine(demo, runtime, cache_dir=tmp_path)
  photo = ROOT / 'samples' / 'blurry' / 'chelsea.png'
  assert restore_cli.main([str(photo), '-o', str(tmp_path / 'out.png'), '--runtime', runtime]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1] == (f"jdsr-restore: error: the {runtime} runtime is not installed: "
                     f"pip install '.[{extra}]' in jdsr's folder"), err
  assert not (tmp_path / 'out.png').exists()


@pytest.mark.slow
def test_jdsr_restore_on_a_runtime(cache, tmp_path, capsys):
  photo = ROOT / 'samples' / 'blurry' / 'chelsea.png'
  argv = [str(photo), '--cache_dir', str(cache), '-q']
  assert restore_cli.main(argv + ['-o', str(tmp_path / 'jax.png')]) == 0
  assert restore_cli.main(argv + ['-o', str(tmp_path / 'ort.png'), '--runtime', 'onnxruntime']) == 0
  capsys.readouterr()
  a = imagefile.read_image(tmp_path / 'jax.png').rgb
  b = imagefile.read_image(tmp_path / 'ort.png').rgb
  assert a.shape == b.shape and np.abs(a - b).max() <= 2 / 255  # 8-bit rounding apart
  assert restore_cli.main(argv + ['-o', str(tmp_path / 'x.png'), '--runtime', 'onnxruntime',
                                  '--dtype', 'bfloat16']) == 1
  assert 'onnxruntime computes in float32' in capsys.readouterr().err


@pytest.mark.slow
def test_a_video_on_a_runtime_is_the_video_in_jax(cache, tmp_path):
  import av

  clip = ROOT / 'samples' / 'clip.mp4'
  argv = [str(clip), '--cache_dir', str(cache), '-q', '--codec', 'ffv1']
  assert restore_cli.main(argv + ['-o', str(tmp_path / 'jax.mkv')]) == 0
  assert restore_cli.main(argv + ['-o', str(tmp_path / 'ov.mkv'), '--runtime', 'openvino',
                                  '--dtype', 'float32']) == 0
  frames = {}
  for name in ('jax', 'ov'):
    with av.open(str(tmp_path / f'{name}.mkv')) as video:
      frames[name] = [f.to_ndarray(format='rgb24').astype(int) for f in video.decode(video=0)]
  assert len(frames['jax']) == len(frames['ov']) == 8
  assert max(np.abs(a - b).max() for a, b in zip(frames['jax'], frames['ov'])) <= 2


@pytest.mark.slow
def test_jdsr_export_writes_model_onnx_and_the_docs_run_it_without_jdsr(onnx_files, tmp_path):
  """docs/export.md's ONNX export command (with --notlsc: the faster conversion), then its
  ONNX Runtime and OpenVINO snippets, where jdsr, jax and flax cannot be imported."""
  command = docs.ONNX_EXPORT_COMMAND + ' --notlsc'
  (tmp_path / 'jdsr').symlink_to(ROOT / 'jdsr')  # the console script's jdsr is this checkout
  result = subprocess.run(['bash', '-c', command], cwd=tmp_path, env=docs.env(tmp_path),
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0 and 'model.onnx' in result.stdout, result.stderr[-3000:]
  out = tmp_path / 'exported_onnx'
  assert sorted(p.name for p in out.iterdir()) == ['export.json', 'model.onnx']
  info = json.loads((out / 'export.json').read_text())
  assert info['onnx']['opset'] == onnx_lib.OPSET and info['tlsc'] is None
  x = np.random.default_rng(9).random((1, 3, 96, 128), np.float32)
  expected = runtimes.load(onnx_files['notlsc'], 'onnxruntime')(x)
  for block in docs.onnx_loaders():
    code = WITHOUT_JDSR + block.replace('np.random.rand(1, 3, 96, 128).astype(np.float32)',
                                        "np.load('x.npy')") + "\nnp.save('sr.npy', sr)\n"
    np.save(tmp_path / 'x.npy', x)
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sr = np.load(tmp_path / 'sr.npy')
    assert sr.shape == (1, 3, 384, 512)
    tolerance = 1e-5 if 'onnxruntime' in block else 0.05  # OpenVINO may compute in bfloat16
    np.testing.assert_allclose(sr, expected, atol=tolerance)


def test_jdsr_export_refuses_unknown_formats(tmp_path, capsys):
  from jdsr.cli import export as export_cli
  assert export_cli.main(['--out', str(tmp_path / 'e'), '--formats', 'onnx,gif']) == 2
  assert '--formats must be some of jax,saved_model,onnx' in capsys.readouterr().err
  assert not (tmp_path / 'e').exists()


FORK_HOOK = ("import os, sys\n"
             "os.register_at_fork(before=lambda: print('FORKED', file=sys.stderr, flush=True))\n")


@pytest.mark.parametrize('runtime', ['openvino', 'onnxruntime'])
def test_loading_a_runtime_beside_jax_forks_no_process(runtime):
  """OpenVINO's import sends usage telemetry from a forked process (JAX warns of deadlocks)."""
  script = FORK_HOOK + (
      'import time, jax\n'
      'jax.numpy.zeros(1).block_until_ready()  # JAX has started its threads\n'
      'from jdsr.inference import runtimes\n'
      f'runtimes._import({runtime!r})\n'
      'time.sleep(1)  # telemetry sends from a thread of its own\n'
      "import sys; print(sorted(m for m in sys.modules if m.startswith('openvino_telemetry')))\n")
  result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'FORKED' not in result.stderr and 'os.fork()' not in result.stderr, result.stderr
  assert result.stdout.strip() == '[]'  # and the telemetry module is not left half-imported
