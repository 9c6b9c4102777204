"""The JAX stacks jdsr declares, no process-wide settings at import, and the GPU check's tools.

scripts/compat.sh (run by .ci/run) installs the newest JAX for real; these tests check
the declarations and the mechanisms on the suite's own stack.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import jax
import jax.numpy as jnp
import pytest
from packaging.specifiers import SpecifierSet

import jdsr
from benchmarks import gpu_packages
from jdsr.inference import forward
from jdsr.nn import xla_options
from tests import helpers

from tests.helpers import ROOT  # noqa: E402
PROJECT = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']


def _spec(name: str) -> SpecifierSet:
  (req,) = [r for r in PROJECT['dependencies'] if r.split('>')[0].split('<')[0] == name]
  return SpecifierSet(req[len(name):])


def test_declared_versions_take_the_stacks_gpu_machines_have():
  assert SpecifierSet(PROJECT['requires-python']) == SpecifierSet('>=3.11,<3.14')
  jax_versions = _spec('jax')
  for version in ('0.10.0', '0.10.2', '0.11.2', '0.12.0', '0.12.0.1'):
    assert version in jax_versions, version
  assert '0.9.2' not in jax_versions  # flax 0.12.8, the oldest flax here, needs jax 0.10
  assert '0.12.12' in _spec('flax') and '0.12.7' not in _spec('flax')
  # orbax-checkpoint before 0.11.17 fails to import with jax 0.10.
  assert '0.11.17' in _spec('orbax-checkpoint') and '0.11.16' not in _spec('orbax-checkpoint')
  for cuda in ('cuda12', 'cuda13'):
    (req,) = PROJECT['optional-dependencies'][cuda]
    assert req.startswith(f'jax[{cuda}]') and SpecifierSet(req.split(']')[1]) == jax_versions


def test_importing_jdsr_changes_no_process_wide_setting():
  code = '''
import os
import orbax.checkpoint as ocp, jax
before = (os.environ.get('XLA_FLAGS'), ocp.type_handlers.get_type_handler(jax.Array))
import jdsr, jdsr.checkpoints, jdsr.checkpoints.pth, jdsr.inference.restore, jdsr.train.loop
import jdsr.cli.restore, jdsr.evaluation.evaluate
jdsr.load(jdsr.DEMO_MODEL)
after = (os.environ.get('XLA_FLAGS'), ocp.type_handlers.get_type_handler(jax.Array))
assert before == after, (before, after)
'''
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  helpers.python(code, env=env)


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='CPU tuning')
def test_cpu_tuning_goes_to_each_compilation(monkeypatch):
  monkeypatch.delenv('XLA_FLAGS', raising=False)
  assert xla_options.compiler_options() == {'xla_cpu_experimental_ynn_fusion_type': ''}
  model = jdsr.build_model(jdsr.tiny_model_config(), 0)
  x = jnp.zeros((1, 16, 16, 3))

  def ynn_fusions(options):
    hlo = forward._jitted(tuple(options.items())).lower(model, x, None).compile().as_text()
    return sum('kind=kCustom' in line and 'ynn' in line for line in hlo.splitlines())

  assert ynn_fusions({}) > 0  # XLA's default: YNNPACK fusions
  assert ynn_fusions(xla_options.compiler_options()) == 0  # what jdsr.apply compiles


def test_xla_flags_win_and_unknown_options_are_dropped(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_experimental_ynn_fusion_type=dot')
  assert xla_options.compiler_options() == {}
  monkeypatch.delenv('XLA_FLAGS')
  monkeypatch.setattr(xla_options, 'CPU_OPTIONS', {'xla_cpu_no_such_option_here': 'x'})
  xla_options._options.cache_clear()
  try:
    assert xla_options.compiler_options() == {}
  finally:
    xla_options._options.cache_clear()


def test_off_the_cpu_there_is_no_tuning():
  assert xla_options._options('gpu', '') == () and xla_options._options('tpu', '') == ()


def test_gpu_packages_missing_parents_are_missing_not_errors():
  assert not gpu_packages.importable('no_such_package_here.checkpoint')
  assert gpu_packages.importable('jax')
  assert gpu_packages.missing() == []  # the suite's environment has all the check needs


def test_gpu_check_without_a_gpu_says_so_in_one_line():
  result = subprocess.run(['bash', 'benchmarks/gpu_check.sh'], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PATH='/usr/bin:/bin'))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      'gpu_check: no NVIDIA GPU here (nvidia-smi failed); --rehearse runs the steps on the CPU']


@pytest.mark.slow
def test_wheel_recipe_brings_exactly_what_the_gpu_machine_lacks(tmp_path):
  """The recipe downloads (from PyPI) what the GPU machine lacks, with its dependencies, in 64 MiB."""
  result = subprocess.run([sys.executable, '-m', 'benchmarks.gpu_packages', '--download',
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  wheels = sorted(tmp_path.glob('*.whl'))
  names = {gpu_packages.canonical(w.name.split('-')[0]) for w in wheels}
  have = gpu_packages.gpu_machine()
  lacking = {gpu_packages.canonical(d) for d in gpu_packages.NEEDED.values()} - have
  assert lacking <= names and not names & have  # what it lacks, nothing it has
  for wheel in wheels:  # and every dependency is there or brought along
    assert gpu_packages.requirements(wheel) <= have | names, wheel.name
  assert all('py3-none-any' in w.name or 'cp312' in w.name for w in wheels)
  assert sum(w.stat().st_size for w in wheels) <= gpu_packages.LIMIT


def test_the_oldest_lane_installs_the_declared_lower_bounds():
  """scripts/compat.sh --oldest pins exactly pyproject.toml's lower bounds."""
  text = (ROOT / 'scripts' / 'compat.sh').read_text()
  (line,) = [line for line in text.splitlines() if line.strip().startswith('PACKAGES=(jax==')]
  pins = dict(re.findall(r'([\w-]+)==([\d.]+)', line))
  for name in ('jax', 'flax', 'optax', 'orbax-checkpoint'):
    (lower,) = [s.version for s in _spec(name) if s.operator == '>=']
    assert SpecifierSet(f'=={pins[name]}') == SpecifierSet(f'=={lower}'), name
  assert pins['jaxlib'] == pins['jax']
  assert 'bash scripts/compat.sh --oldest' in (ROOT / '.ci' / 'run').read_text()
