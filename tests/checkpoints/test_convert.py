"""Checkpoints: official .pth in and out, jdsr checkpoints, one load for every kind, the CLI."""

import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from flax import nnx

import jdsr
from jdsr import checkpoints
from jdsr.checkpoints import pth
from tests import reference
from tests import helpers

from tests.helpers import ROOT  # noqa: E402


def _params(model):
  return {p: np.asarray(v[...]) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def _save(state_dict, path, wrap=True):
  state = OrderedDict((k, torch.from_numpy(v)) for k, v in state_dict.items())
  torch.save({'state_dict': state} if wrap else state, path)
  return path


def test_layout_is_the_official_key_order_and_shapes():
  layout = [(e.key, e.shape) for e in pth.official_layout(jdsr.model_config())]
  assert layout == reference.key_table()
  assert sum(e.is_prelu for e in pth.official_layout(jdsr.model_config())) == 57


def test_round_trip_is_bitwise(golden_model, golden_pth, tmp_path):
  out = tmp_path / 'exported.pth'
  jdsr.save(golden_model, out)
  original = torch.load(golden_pth, weights_only=True)['state_dict']
  exported = torch.load(out, weights_only=True)['state_dict']
  assert list(exported) == [k[len('module.'):] for k in original]
  for key, value in exported.items():
    assert value.shape == original['module.' + key].shape, key
    assert torch.equal(value, original['module.' + key]), key


def test_bare_state_dict_without_prefix_loads_the_same(golden_model, tmp_path):
  path = _save(reference.golden_state_dict(), tmp_path / 'bare.pth', wrap=False)
  bare = jdsr.load(path)
  for p, v in _params(golden_model).items():
    np.testing.assert_array_equal(_params(bare)[p], v, err_msg=str(p))


def test_strict_loading_names_every_bad_key(tmp_path):
  state = reference.golden_state_dict()
  del state['tail.weight']
  state['extra.weight'] = np.zeros((1,), np.float32)
  state['concat12.weight'] = np.zeros((96, 192, 1, 1), np.float32)
  path = _save(state, tmp_path / 'bad.pth')
  with pytest.raises(jdsr.CheckpointError) as e:
    jdsr.load(path)
  message = str(e.value)
  assert 'missing keys (1): tail.weight' in message
  assert 'unexpected keys (1): extra.weight' in message
  assert 'concat12.weight: (96, 192, 1, 1) (expected (96, 192, 3, 3))' in message


def test_wrong_config_is_reported(golden_pth):
  with pytest.raises(jdsr.CheckpointError, match=r'unexpected keys \(305\)'):
    jdsr.load(golden_pth, jdsr.model_config(n_resgroups=12))


def test_prelu_copies_must_agree(tmp_path):
  state = reference.golden_state_dict()
  state['SRNet_before_rec.1.weight'] = np.full((1,), 0.3, np.float32)
  with pytest.raises(jdsr.CheckpointError, match='shared PReLU disagree'):
    jdsr.load(_save(state, tmp_path / 'prelu.pth'))


class _Exploit:
  def __reduce__(self):
    return (exec, ("open(__import__('os').environ['JDSR_PWNED'], 'w').write('pwned')",))


def test_malicious_pickle_does_not_run(tmp_path, monkeypatch):
  marker = tmp_path / 'pwned'
  monkeypatch.setenv('JDSR_PWNED', str(marker))
  path = tmp_path / 'evil.pth'
  torch.save({'state_dict': {'tail.weight': torch.zeros(3)}, 'payload': _Exploit()}, path)
  with pytest.raises(jdsr.CheckpointError, match='refused to load'):
    jdsr.load(path)
  assert not marker.exists()
  # The payload is real: an unsafe load runs it.
  torch.load(path, weights_only=False)
  assert marker.read_text() == 'pwned'


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all'])
def test_unreadable_file_is_reported(tmp_path, content):
  path = tmp_path / 'broken.pth'
  path.write_bytes(content)
  with pytest.raises(jdsr.CheckpointError, match='broken.pth'):
    jdsr.load(path)


def test_missing_file_is_reported(tmp_path):
  with pytest.raises(jdsr.CheckpointError, match='no such file'):
    jdsr.load(tmp_path / 'nope.pth')


def test_orbax_checkpoint_round_trip(tmp_path):
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=3)
  jdsr.save(model, tmp_path / 'ckpt')
  with pytest.raises(FileExistsError):
    jdsr.save(model, tmp_path / 'ckpt')
  restored = jdsr.load(tmp_path / 'ckpt')  # the saved config is used
  assert restored.config == model.config
  want = _params(model)
  got = _params(restored)
  assert want.keys() == got.keys()
  for p in want:
    np.testing.assert_array_equal(got[p], want[p], err_msg=str(p))


def test_load_rejects_other_paths(tmp_path):
  with pytest.raises(jdsr.CheckpointError, match='not a checkpoint'):
    jdsr.load(tmp_path)  # an empty directory
  (tmp_path / 'notes.txt').write_text('x')
  with pytest.raises(jdsr.CheckpointError, match='notes.txt: not a checkpoint'):
    jdsr.load(tmp_path / 'notes.txt')
  with pytest.raises(jdsr.CheckpointError, match='nope: no such file or directory'):
    jdsr.load(tmp_path / 'nope')


def _same_params(a, b):
  want, got = _params(a), _params(b)
  assert want.keys() == got.keys()
  for p in want:
    np.testing.assert_array_equal(got[p], want[p], err_msg=str(p))


def test_one_load_for_every_kind(tmp_path):
  """A .pth, a jdsr checkpoint, a workdir's best, a workdir with only checkpoints/: one jdsr.load."""
  config = jdsr.tiny_model_config()
  models = [jdsr.build_model(config, rngs=seed) for seed in range(3)]
  jdsr.save(models[0], tmp_path / 'tiny.pth')
  _same_params(jdsr.load(tmp_path / 'tiny.pth', config), models[0])
  assert checkpoints.kind(tmp_path / 'tiny.pth') == 'pth'

  jdsr.save(models[1], tmp_path / 'ckpt')
  assert checkpoints.kind(tmp_path / 'ckpt') == 'checkpoint'
  _same_params(jdsr.load(tmp_path / 'ckpt'), models[1])

  # A training workdir: best/ wins over checkpoints/, and the highest step within each.
  work = tmp_path / 'work'
  jdsr.save(models[0], work / 'checkpoints' / '2')
  jdsr.save(models[1], work / 'checkpoints' / '10')
  assert checkpoints.kind(work) == 'workdir'
  assert checkpoints.resolve(work) == work / 'checkpoints' / '10'
  _same_params(jdsr.load(work), models[1])
  jdsr.save(models[2], work / 'best' / '4')
  assert checkpoints.resolve(work) == work / 'best' / '4'
  _same_params(jdsr.load(work), models[2])


def test_a_config_that_does_not_fit_is_one_clear_error(tmp_path):
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), rngs=0), tmp_path / 'ckpt')
  with pytest.raises(jdsr.CheckpointError, match=r'saved for a model with .*n_feat=8, .*says .*n_feat=96, '):
    jdsr.load(tmp_path / 'ckpt', jdsr.model_config())
  # Compute settings are not architecture: any conv_impl loads.
  xla = jdsr.tiny_model_config()
  xla.conv_impl = 'xla'
  model = jdsr.load(tmp_path / 'ckpt', xla)
  assert model.config['conv_impl'] == 'xla'


def test_a_damaged_checkpoint_is_one_clear_error(tmp_path):
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), rngs=0), tmp_path / 'ckpt')
  for f in (tmp_path / 'ckpt' / 'params').rglob('*'):
    if f.is_file() and f.stat().st_size > 100:
      f.write_bytes(b'\0' * 10)
  with pytest.raises(jdsr.CheckpointError, match='ckpt: cannot read the checkpoint'):
    jdsr.load(tmp_path / 'ckpt')


def test_overwrite_replaces_only_checkpoints(tmp_path):
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=0)
  victim = tmp_path / 'victim'
  (victim / '.git').mkdir(parents=True)
  (victim / 'notes.md').write_text('x')
  with pytest.raises(jdsr.CheckpointError, match='refusing to replace it'):
    jdsr.save(model, victim, overwrite=True)
  assert (victim / 'notes.md').read_text() == 'x' and (victim / '.git').is_dir()
  jdsr.save(model, tmp_path / 'ckpt')
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), rngs=1), tmp_path / 'ckpt', overwrite=True)
  _same_params(jdsr.load(tmp_path / 'ckpt'), jdsr.build_model(jdsr.tiny_model_config(), rngs=1))
  (tmp_path / 'dir.pth').mkdir()
  with pytest.raises(jdsr.CheckpointError, match='refusing to replace it'):
    jdsr.save(model, tmp_path / 'dir.pth', overwrite=True)


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'jdsr.cli.convert', *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_both_ways(golden_pth, tmp_path):
  assert 'orbax' in _cli('--help').stdout
  ckpt, pth = tmp_path / 'ckpt', tmp_path / 'back.pth'
  result = _cli('--checkpoint', golden_pth, '--out', ckpt)
  assert result.returncode == 0, result.stderr
  assert '34,116,641 parameters' in result.stdout
  result = _cli('--checkpoint', ckpt, '--out', pth)
  assert result.returncode == 0, result.stderr
  original = torch.load(golden_pth, weights_only=True)['state_dict']
  for key, value in torch.load(pth, weights_only=True)['state_dict'].items():
    assert torch.equal(value, original['module.' + key]), key
  again = _cli('--checkpoint', ckpt, '--out', pth)
  assert again.returncode != 0 and 'exists' in again.stderr
  itself = _cli('--checkpoint', ckpt, '--out', ckpt, '--overwrite')
  assert itself.returncode == 1 and 'that is the input checkpoint' in itself.stderr


@pytest.mark.slow
def test_cli_reports_a_bad_file(tmp_path):
  bad = tmp_path / 'bad.pth'
  bad.write_bytes(b'junk')
  result = _cli('--checkpoint', bad, '--out', tmp_path / 'out')
  assert result.returncode == 1
  assert 'bad.pth' in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.slow
def test_building_running_and_training_never_import_the_pth_module():
  code = ('import sys, jdsr, jdsr.inference.restore, jdsr.evaluation.evaluate, jdsr.train.loop, jdsr.train.phases\n'
          "model = jdsr.load('jdsr/models/demo')\n"
          "assert 'jdsr.checkpoints.pth' not in sys.modules and 'torch' not in sys.modules, 'imported'\n")
  helpers.python(code)


def test_a_checkpoint_saved_across_devices_loads_on_one(tmp_path):
  """What a multi-device (or multi-host) run saved, a laptop loads: the target is one device."""
  code = ('import sys, jax, jdsr\n'
          'from flax import nnx\n'
          'from jax.sharding import NamedSharding, PartitionSpec as P\n'
          'model = jdsr.build_model(jdsr.tiny_model_config(), rngs=4)\n'
          "mesh = jax.make_mesh((2,), ('data',))\n"
          'nnx.update(model, jax.device_put(nnx.state(model, nnx.Param), NamedSharding(mesh, P())))\n'
          'jdsr.save(model, sys.argv[1])\n')
  env = dict(__import__('os').environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=2')
  result = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'ckpt')], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  _same_params(jdsr.load(tmp_path / 'ckpt'), jdsr.build_model(jdsr.tiny_model_config(), rngs=4))


@pytest.mark.slow
def test_the_model_the_step_and_restoring_never_import_tensorflow():
  """What benchmarks/gpu_check.sh runs on a GPU machine, where TensorFlow is too large to carry."""
  code = ('import sys, jax, numpy as np, jdsr, jdsr.inference.restore, jdsr.train.phases, jdsr.checkpoints\n'
          'import jdsr.train.loop, jdsr.data.pipeline, jdsr.data.reds_tfds, jdsr.data.sources\n'
          'from configs import phase3_joint\n'
          "model = jdsr.load('jdsr/models/demo')\n"
          'jdsr.inference.restore.restore(model, np.zeros((16, 16, 3), np.float32))\n'
          "assert 'tensorflow' not in sys.modules, 'imported'\n")
  helpers.python(code)


@pytest.mark.parametrize('dtype, name', [('int32', 'int32'), ('complex64', 'complex64'),
                                         ('bool', 'bool')])
def test_a_pth_tensor_that_is_not_floating_point_is_refused(tmp_path, dtype, name):
  import torch
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), rngs=0), tmp_path / 'ok.pth')
  state = torch.load(tmp_path / 'ok.pth', weights_only=True)
  weight = state['state_dict']['tail.weight']
  state['state_dict']['tail.weight'] = weight.to(getattr(torch, dtype))
  torch.save(state, tmp_path / 'odd.pth')
  with pytest.raises(jdsr.CheckpointError,
                     match=f'odd.pth: tail.weight is a {name} tensor, not floating point'):
    jdsr.load(tmp_path / 'odd.pth', jdsr.tiny_model_config())


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16', 'float64'])
def test_other_floating_point_pth_tensors_are_cast_to_float32(tmp_path, dtype):
  import torch
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=0)
  jdsr.save(model, tmp_path / 'ok.pth')
  state = torch.load(tmp_path / 'ok.pth', weights_only=True)
  state['state_dict'] = {k: v.to(getattr(torch, dtype)) for k, v in state['state_dict'].items()}
  torch.save(state, tmp_path / 'cast.pth')
  loaded = jdsr.load(tmp_path / 'cast.pth', jdsr.tiny_model_config())
  kernel = np.asarray(loaded.tail.kernel[...])
  assert kernel.dtype == np.float32
  np.testing.assert_allclose(kernel, np.asarray(model.tail.kernel[...]), rtol=1e-2, atol=1e-3)
