"""jdsr-export: its jax.export program and TensorFlow SavedModel agree with jdsr.apply.

docs/export.md's export command and its two loaders run here as written: the
command in a folder where ``jdsr`` is this checkout, the jax loader in a
subprocess where jdsr and flax cannot be imported.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

import jdsr
from jdsr.checkpoints import export
from jdsr.cli import export as export_cli
from jdsr.nn import layers
from tests import docs


from tests.helpers import ROOT  # noqa: E402
# Run before a loader: jdsr and flax cannot be imported, so the loader needs jax alone.
WITHOUT_JDSR = "import sys\nsys.modules.update(jdsr=None, flax=None)\n"
SAVE = "\nnp.save('x.npy', x)\nnp.save('sr.npy', np.asarray(sr))\n"


@pytest.fixture(scope='module')
def exported(tmp_path_factory) -> pathlib.Path:
  """The folder where docs/export.md's export command ran; the export is its exported/."""
  work = tmp_path_factory.mktemp('export')
  (work / 'jdsr').symlink_to(ROOT / 'jdsr')
  result = subprocess.run(['bash', '-c', docs.EXPORT_COMMAND], cwd=work,
                          env=docs.env(work), capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'wrote' in result.stdout
  return work


@pytest.fixture(scope='module')
def demo() -> jdsr.JDSR:
  return jdsr.load(jdsr.DEMO_MODEL)


def _loader(kind: str) -> str:
  (block,) = [b for b in docs.export_loaders() if f'import {kind}' in b]
  return block


@pytest.mark.slow
def test_the_export_folder(exported, demo):
  out = exported / 'exported'
  assert sorted(p.name for p in out.iterdir()) == [
      'export.json', 'model.jax', 'saved_model', 'weights.npz']
  info = json.loads((out / 'export.json').read_text())
  assert info['tlsc'] == {'base_size': [96, 96], 'train_size': [64, 64]}
  assert info['dtype'] == 'float32' and info['platforms'] == ['cpu', 'cuda']
  assert info['model_config'] == dict(demo.config)
  exported_fn = jax.export.deserialize((out / 'model.jax').read_bytes())
  assert exported_fn.platforms == ('cpu', 'cuda')
  assert str(exported_fn.in_avals[-1].shape) == '(b, 8*h, 8*w, 3)'
  assert str(exported_fn.out_avals[0].shape) == '(b, 32*h, 32*w, 3)'


@pytest.mark.slow
def test_jax_loader_without_jdsr_agrees_with_apply(exported, demo):
  code = WITHOUT_JDSR + _loader('jax') + SAVE
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  result = subprocess.run([sys.executable, '-c', code], cwd=exported, env=env,
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  x, sr = np.load(exported / 'x.npy'), np.load(exported / 'sr.npy')
  assert x.shape == (1, 96, 128, 3) and sr.shape == (1, 384, 512, 3)
  _, expected = jdsr.apply(demo, x, tlsc=jdsr.TLSC())
  np.testing.assert_allclose(sr, expected, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_saved_model_loader_agrees_with_apply(exported, demo, monkeypatch):
  monkeypatch.chdir(exported)
  namespace = {}
  exec(_loader('tensorflow'), namespace)  # noqa: S102 - the README's code, as written
  x, sr = namespace['x'], np.asarray(namespace['sr'])
  _, expected = jdsr.apply(demo, x, tlsc=jdsr.TLSC())
  np.testing.assert_allclose(sr, expected, rtol=0, atol=1e-5)
  by_signature = namespace['model'].signatures['serving_default'](x=x)['sr']
  np.testing.assert_array_equal(by_signature, sr)


def test_never_replaces_what_is_not_an_export(tmp_path, capsys, monkeypatch):
  """The folder's rules, with a stand-in for the (tested above) program and weights."""
  stand_in = jax.export.export(jax.jit(lambda weights, x: x))({}, np.zeros((1, 8, 8, 3)))
  monkeypatch.setattr(export, 'export_jax', lambda *args, **kwargs: (stand_in, {'w': np.ones(2)}))
  args = ['--checkpoint', str(jdsr.DEMO_MODEL), '--platforms', 'cpu', '--no_saved_model']
  (tmp_path / 'folder').mkdir()
  (tmp_path / 'folder' / 'notes.txt').write_text('mine')
  assert export_cli.main(args + ['--out', str(tmp_path / 'folder'), '--overwrite']) == 1
  assert 'not a jdsr export' in capsys.readouterr().err
  assert (tmp_path / 'folder' / 'notes.txt').read_text() == 'mine'
  for inside_or_above in (jdsr.DEMO_MODEL / 'params', jdsr.DEMO_MODEL.parent):
    assert export_cli.main(args + ['--out', str(inside_or_above), '--overwrite']) == 1
    assert 'the input checkpoint' in capsys.readouterr().err
  assert export_cli.main(args + ['--out', str(tmp_path / 'e'), '--notlsc']) == 0
  assert export_cli.main(args + ['--out', str(tmp_path / 'e')]) == 1
  assert '--overwrite' in capsys.readouterr().err
  info = json.loads((tmp_path / 'e' / 'export.json').read_text())
  assert info['tlsc'] is None and info['conv_impl'] == 'auto'  # CPU alone: Winograd
  assert export_cli.main(args + ['--out', str(tmp_path / 'e'), '--overwrite']) == 0
  info = json.loads((tmp_path / 'e' / 'export.json').read_text())
  assert info['tlsc'] is not None and info['files'] == ['model.jax', 'weights.npz']
  assert sorted(p.name for p in tmp_path.iterdir()) == ['e', 'folder']  # no temporary left


@pytest.mark.slow
def test_default_model_at_one_size(tmp_path):
  """The paper's model (random weights), without TLSC, a batch of 2: both agree to 1e-4."""
  model = jdsr.build_model(jdsr.model_config(), rngs=0)
  x = np.random.default_rng(1).random((2, 16, 16, 3), np.float32)
  _, expected = jdsr.apply(model, x)
  out = export.export(model, tmp_path / 'e', tlsc=None)
  forward = jax.export.deserialize((out / 'model.jax').read_bytes())
  weights = dict(np.load(out / 'weights.npz'))
  np.testing.assert_allclose(forward.call(weights, x), expected, rtol=0, atol=1e-4)
  with pytest.raises(ValueError, match='Division had remainder'):  # H, W: multiples of 8
    forward.call(weights, np.zeros((1, 12, 16, 3), np.float32))
  import tensorflow as tf
  saved = tf.saved_model.load(str(out / 'saved_model'))
  np.testing.assert_allclose(saved.serve(x)['sr'], expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize('window, shape', [((12, 20), (1, 8, 16, 3)),  # covers all: global
                                           ((12, 20), (2, 24, 40, 2)),
                                           ((7, 96), (1, 16, 104, 1))])
def test_box_mean_with_symbolic_sizes(window, shape):
  """TLSC's local mean for sizes known at run time: the mean of the concrete-size code."""
  spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape('b, 8*h, 8*w, c'), np.float32)
  exported = jax.export.export(jax.jit(lambda x: layers.box_mean(x, window)))(spec)
  x = np.random.default_rng(0).random(shape, np.float32)
  expected = np.broadcast_to(layers.box_mean(x, window), shape)  # a global mean is 1×1
  np.testing.assert_allclose(exported.call(x), expected, rtol=0, atol=1e-6)
