import os

# The tests import `jdsr` and `configs` from the checkout (pyproject.toml: pythonpath), and
# run on the CPU whatever the machine has.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# Tests compile the same programs many times over (each training run jits its own step
# function, both workers compile the golden model): a persistent compilation cache, shared
# with the subprocesses the tests start and kept between runs in .cache/jax-tests (delete it
# at will), compiles each once.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  import pathlib
  os.environ['JAX_COMPILATION_CACHE_DIR'] = str(pathlib.Path(__file__).parents[1] / '.cache' /
                                                'jax-tests')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'

import pathlib  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402

from tests import helpers, reference  # noqa: E402


@pytest.fixture(scope='session')
def golden_pth(tmp_path_factory):
  """The golden weights written as an official multi-GPU .pth ('module.' keys)."""
  import torch
  from collections import OrderedDict

  state = OrderedDict((f'module.{k}', torch.from_numpy(v))
                      for k, v in reference.golden_state_dict().items())
  path = tmp_path_factory.mktemp('golden') / 'golden.pth'
  torch.save({'state_dict': state, 'epoch': 40, 'optimizer': {}}, path)
  return path


@pytest.fixture(scope='session')
def golden_model():
  """The paper's model with the golden weights (built without PyTorch)."""
  import jdsr
  from jdsr.checkpoints import pth
  return pth.from_state_dict(reference.golden_state_dict(), jdsr.model_config())


@pytest.fixture(scope='session')
def demo_model():
  """The demo model that ships with jdsr (read once per worker; tests must not change it)."""
  import jdsr
  return jdsr.load(jdsr.DEMO_MODEL)


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory) -> pathlib.Path:
  """The untrained tiny model (seed 0) as a jdsr checkpoint directory; tests must not change it."""
  import jdsr
  path = tmp_path_factory.mktemp('tiny-checkpoint') / 'tiny'
  jdsr.save(jdsr.build_model(jdsr.tiny_model_config(), rngs=0), path)
  return path


@pytest.fixture(scope='session')
def onnx_cache(tmp_path_factory) -> pathlib.Path:
  """One cache of ONNX files for the whole session (all workers): each conversion made once.

  It is also ``JDSR_CACHE_DIR`` for the commands the tests run (``jdsr-restore --runtime``).
  """
  return helpers.once(tmp_path_factory, 'onnx-cache', lambda folder: None)


@pytest.fixture(autouse=True, scope='session')
def _session_cache_dir(onnx_cache):
  """jdsr's cache (ONNX files) is the session's, never the user's ``~/.cache/jdsr``."""
  before = os.environ.get('JDSR_CACHE_DIR')
  os.environ['JDSR_CACHE_DIR'] = str(onnx_cache)
  yield
  if before is None:
    os.environ.pop('JDSR_CACHE_DIR', None)
  else:
    os.environ['JDSR_CACHE_DIR'] = before


@pytest.fixture
def small_disk(tmp_path):
  """A 16 MiB file system of its own (tmpfs), to fill up."""
  mount = tmp_path / 'small'
  mount.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', str(mount)],
                    capture_output=True).returncode:
    pytest.skip('cannot mount a small file system here (needs root)')
  yield mount
  subprocess.run(['umount', '-l', str(mount)], check=False)


@pytest.fixture(scope='session')
def repo_copy(tmp_path_factory) -> pathlib.Path:
  """One copy of the working tree for the session, where the docs' commands run as written.

  Each documented command runs once in it (tests/docs.py), each writing its own outputs.
  """
  from tests import docs
  return helpers.once(tmp_path_factory, 'repo', docs.repo_copy) / 'jdsr'  # where it copies


@pytest.fixture(scope='session')
def training_chain(repo_copy, tmp_path_factory) -> pathlib.Path:
  """docs/training.md's first commands, run once: phases 1 → 2 → 3 of the tiny model, then
  eval.py. The runs are in ``runs/try/phase{1,2,3}`` of the repository copy, the evaluation in
  ``runs/try/eval``; ``commands.json`` beside them lists what ran. Tests must not change them.
  """
  import json
  from tests import docs

  def build(folder: pathlib.Path) -> None:
    ran = [command for command, _ in docs.run_all('docs/training.md', repo_copy, folder)]
    (folder / 'commands.json').write_text(json.dumps(ran))
  folder = helpers.once(tmp_path_factory, 'training-chain', build)
  (repo_copy / 'runs' / 'try' / 'commands.json').write_text((folder / 'commands.json').read_text())
  return repo_copy / 'runs' / 'try'
