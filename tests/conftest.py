import os
import sys
import pathlib

# The repository root, so that tests import `jdsr` and `configs` from the checkout.
sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# Tests compile the same tiny programs many times over (each training run jits
# its own step function): a persistent compilation cache, shared with the
# subprocesses the tests start, compiles each once per session.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  import tempfile
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='jdsr-jax-cache-')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'

import pytest  # noqa: E402

from tests import reference  # noqa: E402


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
def golden_model(golden_pth):
  import jdsr
  return jdsr.load(golden_pth)
