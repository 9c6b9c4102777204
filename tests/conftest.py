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
def golden_model():
  """The paper's model with the golden weights (built without PyTorch)."""
  import jdsr
  from jdsr.checkpoints import pth
  return pth.from_state_dict(reference.golden_state_dict(), jdsr.model_config())


# The full run gives each test file to one of two workers, in the order collected
# (scripts/test.sh: --dist loadfile). The longest files go first, so that the short ones
# even out the end instead of one long file running alone on one core.
LONGEST_FIRST = ('test_multiprocess.py', 'test_train.py', 'test_docs.py', 'test_readme.py',
                 'test_runtimes.py', 'test_hostile.py', 'test_third_round.py',
                 'test_app_browser.py', 'test_model.py')


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file
