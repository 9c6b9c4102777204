"""A real two-process run: docs/training.md's two `train.py --distributed` commands (Gloo).

Two processes train the tiny model for 2 steps, then resume to 4; one process with two
devices does the same. The checkpoints must agree, each written by one process only.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import pytest
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

import jdsr


from tests.helpers import ROOT  # noqa: E402


def _readme_commands() -> list[list[str]]:
  """docs/training.md's two-process commands (process 0, then 1), as argument lists."""
  text = (ROOT / 'docs' / 'training.md').read_text().replace('\\\n', ' ')
  lines = [line.split('#')[0].split() for line in text.splitlines()
           if line.startswith('python train.py --distributed --coordinator_address=localhost:')]
  assert len(lines) == 2, 'docs/training.md shows the two processes of the multi-host run'
  assert [re.search(r'--process_id=(\d)', ' '.join(line))[1] for line in lines] == ['0', '1']
  return lines


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _run(commands: list[list[str]], env: dict, tmp_path: pathlib.Path, name: str) -> None:
  logs = [tmp_path / f'{name}.{i}.log' for i in range(len(commands))]
  procs = [subprocess.Popen([sys.executable, *command[1:]], cwd=ROOT, env=env,
                            stdout=log.open('w'), stderr=subprocess.STDOUT)
           for command, log in zip(commands, logs)]
  try:
    codes = [proc.wait(timeout=600) for proc in procs]
  finally:
    for proc in procs:
      proc.kill()
  for code, log in zip(codes, logs):
    assert code == 0, f'{log.name}:\n' + log.read_text()[-3000:]


def _params(checkpoint: pathlib.Path) -> dict[str, np.ndarray]:
  """A checkpoint's parameters, loaded in this one process whatever topology saved it."""
  params = nnx.state(jdsr.load(checkpoint), nnx.Param)
  return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(params)}


@pytest.mark.slow
def test_two_processes_equal_one_and_resume(tmp_path):
  port = str(_free_port())
  two, one = tmp_path / 'two', tmp_path / 'one'
  commands = [[arg.replace('runs/two', str(two)).replace('localhost:12355', f'localhost:{port}')
               for arg in command] for command in _readme_commands()]
  env = dict(os.environ, JAX_PLATFORMS='cpu')  # and the suite's compilation cache
  env.pop('XLA_FLAGS', None)

  _run([c + ['--config.num_train_steps=2'] for c in commands], env, tmp_path, 'first')
  assert ocp.utils.checkpoint_steps(two / 'checkpoints') == [2]
  _run(commands, env, tmp_path, 'resumed')  # the tiny config's 4 steps: resumes at 2
  assert 'resuming' in (tmp_path / 'resumed.0.log').read_text().lower()

  # One process, two devices: the same global batches (each host's blocks, in process order).
  single = [a for a in commands[0] if not re.match(r'--(distributed|coordinator_address|'
                                                   r'num_processes|process_id)', a)]
  single = [str(one) if a == str(two) else a for a in single]
  env1 = dict(env, XLA_FLAGS='--xla_force_host_platform_device_count=2')
  _run([single + ['--config.num_train_steps=2']], env1, tmp_path, 'single_first')  # the same
  _run([single], env1, tmp_path, 'single_resumed')  # learning-rate schedules as the two

  for step in (2, 4):
    got, want = _params(two / 'checkpoints' / str(step)), _params(one / 'checkpoints' / str(step))
    assert got.keys() == want.keys()
    for key in want:
      np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=f'{step} {key}')
  assert any(not np.array_equal(a, b) for a, b in zip(
      _params(two / 'checkpoints' / '2').values(), _params(two / 'checkpoints' / '4').values()))

  # Exactly one process wrote each checkpoint: orbax keeps a folder per writing process.
  writers = {p.name for p in two.rglob('ocdbt.process_*')}
  assert writers == {'ocdbt.process_0'}, writers
  assert not (two / '.lock').exists()  # process 0's lock, released


def _start(commands: list[list[str]], env: dict, tmp_path: pathlib.Path, name: str):
  logs = [tmp_path / f'{name}.{i}.log' for i in range(len(commands))]
  procs = [subprocess.Popen([sys.executable, *command[1:]], cwd=ROOT, env=env,
                            stdout=log.open('w'), stderr=subprocess.STDOUT)
           for command, log in zip(commands, logs)]
  return procs, logs


def _wait_for(procs, log: pathlib.Path, text: str, timeout: float = 400) -> None:
  end = time.monotonic() + timeout
  while text not in log.read_text(errors='replace'):
    assert all(p.poll() is None for p in procs), log.read_text()[-3000:]
    assert time.monotonic() < end, f'no {text!r} in time:\n' + log.read_text()[-3000:]
    time.sleep(0.2)


def _last_line(log: pathlib.Path) -> str:
  text = log.read_text()
  assert 'Traceback' not in text, text[-3000:]
  return text.strip().splitlines()[-1]


def _files(folder: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
          if p.is_file()}


@pytest.mark.slow
def test_preemption_stops_every_process_at_one_step_and_a_lost_process_is_one_line(tmp_path):
  """A scheduler's SIGTERM to each process: all agree on the step, save it once and exit 143.
  Requeued, the run resumes there and names what changed; then process 1 is killed outright: process 0 says so in
  one line at once (not after the coordination service's heartbeat timeout), harming nothing."""
  work = tmp_path / 'run'
  env = dict(os.environ, JAX_PLATFORMS='cpu')  # and the suite's compilation cache
  env.pop('XLA_FLAGS', None)

  def commands():
    port = str(_free_port())
    return [[arg.replace('runs/two', str(work)).replace('localhost:12355', f'localhost:{port}')
             for arg in command] + ['--config.num_train_steps=100000',
                                    '--config.checkpoint_every=100000']
            for command in _readme_commands()]

  procs, logs = _start(commands(), env, tmp_path, 'preempted')
  try:
    _wait_for(procs, logs[0], '[3] train/loss')
    for proc in procs:
      proc.send_signal(signal.SIGTERM)
    codes = [proc.wait(timeout=300) for proc in procs]
  finally:
    for proc in procs:
      proc.kill()
  assert codes == [143, 143], [log.read_text()[-2000:] for log in logs]
  steps = {int(re.search(r'stopped by preemption at step (\d+), checkpoint ', _last_line(log))[1])
           for log in logs}
  assert len(steps) == 1, steps
  step = steps.pop()
  assert ocp.utils.checkpoint_steps(work / 'checkpoints') == [step]
  assert not (work / '.lock').exists()
  saved = _files(work / 'checkpoints')

  # Requeued with a new learning rate: it resumes at the saved step and names the change.
  requeued = [c + ['--config.learning_rate=0.002'] for c in commands()]
  procs, logs = _start(requeued, env, tmp_path, 'requeued')
  try:
    _wait_for(procs, logs[0], f'[{step + 2}] train/loss')
    text = logs[0].read_text()
    assert f'Resuming from step {step}' in text
    warned = [line for line in text.splitlines() if 'changed config fields' in line]
    assert len(warned) == 1 and 'learning_rate 0.0001 -> 0.002' in warned[0], warned
    procs[1].kill()
    start = time.monotonic()
    code = procs[0].wait(timeout=120)
    waited = time.monotonic() - start
  finally:
    for proc in procs:
      proc.kill()
  assert code == 1 and waited < 30, (code, waited, logs[0].read_text()[-3000:])
  last = _last_line(logs[0])
  assert last.startswith('train.py: error: process 0 lost the others of this run (')
  assert last.endswith('the checkpoints are intact: start every process again to resume')
  assert _files(work / 'checkpoints') == saved
