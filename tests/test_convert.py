"""Official checkpoints in and out, orbax checkpoints, and the convert CLI."""

import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from flax import nnx

import jdsr
from jdsr import convert
from tests import reference

ROOT = __import__('pathlib').Path(__file__).parents[1]


def _params(model):
  return {p: np.asarray(v[...]) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def _save(state_dict, path, wrap=True):
  state = OrderedDict((k, torch.from_numpy(v)) for k, v in state_dict.items())
  torch.save({'state_dict': state} if wrap else state, path)
  return path


def test_layout_is_the_official_key_order_and_shapes():
  layout = [(e.key, e.shape) for e in convert.official_layout(jdsr.model_config())]
  assert layout == reference.key_table()
  assert sum(e.is_prelu for e in convert.official_layout(jdsr.model_config())) == 57


def test_round_trip_is_bitwise(golden_model, golden_pth, tmp_path):
  out = tmp_path / 'exported.pth'
  jdsr.save_pytorch(golden_model, out)
  original = torch.load(golden_pth, weights_only=True)['state_dict']
  exported = torch.load(out, weights_only=True)['state_dict']
  assert list(exported) == [k[len('module.'):] for k in original]
  for key, value in exported.items():
    assert value.shape == original['module.' + key].shape, key
    assert torch.equal(value, original['module.' + key]), key


def test_bare_state_dict_without_prefix_loads_the_same(golden_model, tmp_path):
  path = _save(reference.golden_state_dict(), tmp_path / 'bare.pth', wrap=False)
  bare = jdsr.load_pytorch(path)
  for p, v in _params(golden_model).items():
    np.testing.assert_array_equal(_params(bare)[p], v, err_msg=str(p))


def test_strict_loading_names_every_bad_key(tmp_path):
  state = reference.golden_state_dict()
  del state['tail.weight']
  state['extra.weight'] = np.zeros((1,), np.float32)
  state['concat12.weight'] = np.zeros((96, 192, 1, 1), np.float32)
  path = _save(state, tmp_path / 'bad.pth')
  with pytest.raises(convert.CheckpointError) as e:
    jdsr.load_pytorch(path)
  message = str(e.value)
  assert 'missing keys (1): tail.weight' in message
  assert 'unexpected keys (1): extra.weight' in message
  assert 'concat12.weight: (96, 192, 1, 1) (expected (96, 192, 3, 3))' in message


def test_wrong_config_is_reported(golden_pth):
  with pytest.raises(convert.CheckpointError, match=r'unexpected keys \(305\)'):
    jdsr.load_pytorch(golden_pth, jdsr.model_config(n_resgroups=12))


def test_prelu_copies_must_agree(tmp_path):
  state = reference.golden_state_dict()
  state['SRNet_before_rec.1.weight'] = np.full((1,), 0.3, np.float32)
  with pytest.raises(convert.CheckpointError, match='shared PReLU disagree'):
    jdsr.load_pytorch(_save(state, tmp_path / 'prelu.pth'))


class _Exploit:
  def __reduce__(self):
    return (exec, ("open(__import__('os').environ['JDSR_PWNED'], 'w').write('pwned')",))


def test_malicious_pickle_does_not_run(tmp_path, monkeypatch):
  marker = tmp_path / 'pwned'
  monkeypatch.setenv('JDSR_PWNED', str(marker))
  path = tmp_path / 'evil.pth'
  torch.save({'state_dict': {'tail.weight': torch.zeros(3)}, 'payload': _Exploit()}, path)
  with pytest.raises(convert.CheckpointError, match='refused to load'):
    jdsr.load_pytorch(path)
  assert not marker.exists()
  # The payload is real: an unsafe load runs it.
  torch.load(path, weights_only=False)
  assert marker.read_text() == 'pwned'


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all'])
def test_unreadable_file_is_reported(tmp_path, content):
  path = tmp_path / 'broken.pth'
  path.write_bytes(content)
  with pytest.raises(convert.CheckpointError, match='broken.pth'):
    jdsr.load_pytorch(path)


def test_missing_file_is_reported(tmp_path):
  with pytest.raises(convert.CheckpointError, match='no such file'):
    jdsr.load_pytorch(tmp_path / 'nope.pth')


def test_orbax_checkpoint_round_trip(tmp_path):
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=3)
  jdsr.save_checkpoint(model, tmp_path / 'ckpt')
  with pytest.raises(FileExistsError):
    jdsr.save_checkpoint(model, tmp_path / 'ckpt')
  restored = jdsr.load_checkpoint(tmp_path / 'ckpt')  # the saved config is used
  assert restored.config == model.config
  want = _params(model)
  got = _params(restored)
  assert want.keys() == got.keys()
  for p in want:
    np.testing.assert_array_equal(got[p], want[p], err_msg=str(p))


def test_load_checkpoint_rejects_other_directories(tmp_path):
  with pytest.raises(convert.CheckpointError, match='not a jdsr orbax checkpoint'):
    jdsr.load_checkpoint(tmp_path)


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'jdsr.convert', *map(str, args)], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_cli_both_ways(golden_pth, tmp_path):
  assert 'orbax' in _cli('--help').stdout
  ckpt, pth = tmp_path / 'ckpt', tmp_path / 'back.pth'
  result = _cli('--pth', golden_pth, '--out', ckpt)
  assert result.returncode == 0, result.stderr
  assert '34,116,641 parameters' in result.stdout
  result = _cli('--ckpt', ckpt, '--out', pth)
  assert result.returncode == 0, result.stderr
  original = torch.load(golden_pth, weights_only=True)['state_dict']
  for key, value in torch.load(pth, weights_only=True)['state_dict'].items():
    assert torch.equal(value, original['module.' + key]), key
  again = _cli('--ckpt', ckpt, '--out', pth)
  assert again.returncode != 0 and 'exists' in again.stderr


def test_cli_reports_a_bad_file(tmp_path):
  bad = tmp_path / 'bad.pth'
  bad.write_bytes(b'junk')
  result = _cli('--pth', bad, '--out', tmp_path / 'out')
  assert result.returncode == 1
  assert 'bad.pth' in result.stderr and 'Traceback' not in result.stderr
