"""Train one phase of the network.

    python train.py --config configs/phase1_deblur.py --workdir runs/phase1 \
        --config.data.reds_manual_dir=/data/REDS --config.data.reds_data_dir=/data/tfds
    python train.py --config configs/phase2_sr.py --workdir runs/phase2 \
        --config.init_from=runs/phase1 ...
    python train.py --config configs/phase3_joint.py --workdir runs/phase3 \
        --config.init_from=runs/phase2 ...

Running the same command again resumes from the latest checkpoint in
--workdir. Any config field can be set with --config.FIELD=VALUE; see
configs/default.py for all of them and jdsr/train/loop.py for what is written.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
import threading
import time

# TensorFlow (the input pipeline) logs its own INFO and WARNING lines, among them the whole
# Python traceback of a data error that this program reports in one line: keep its errors only
# (at least; 3 silences those too).
os.environ['TF_CPP_MIN_LOG_LEVEL'] = max(os.environ.get('TF_CPP_MIN_LOG_LEVEL', '0'), '2')

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jdsr import config as config_lib
from jdsr.errors import one_line

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Training config file.',
                                          lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints and TensorBoard logs go.')
flags.DEFINE_bool('distributed', False,
                  'Call jax.distributed.initialize() first (one process per host). Without the '
                  'three flags below, the coordinator is found from the environment (SLURM, '
                  'TPU pods, JAX_COORDINATOR_ADDRESS).')
flags.DEFINE_string('coordinator_address', None, "With --distributed: process 0's HOST:PORT.")
flags.DEFINE_integer('num_processes', None, 'With --distributed: how many processes in all.')
flags.DEFINE_integer('process_id', None, 'With --distributed: this process, 0 to num_processes-1.')
flags.DEFINE_float('coordinator_timeout', 300.0,
                   'With --distributed: seconds to wait for the coordinator and every process to '
                   'join, with progress every 10 s; then one line and exit status 1.')
config_lib.define_compilation_cache_flag()
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS
# Exit statuses besides 0 (done) and 1 (an error): stopped by SIGTERM or preemption after
# saving a checkpoint (128 + 15), or by Ctrl-C (128 + 2). Either way, rerunning resumes.
EXIT_TERMINATED, EXIT_INTERRUPTED = 143, 130


def _quiet_orbax(record: std_logging.LogRecord) -> bool:
  """Drop orbax's INFO chatter (a dozen lines per checkpoint); keep its warnings, one line each.

  (A failed write, a full disk say, is logged by orbax with a traceback from its writer
  thread; the loop reports it in one line when it waits for the write.)
  """
  if '/orbax/' not in record.pathname:
    return True
  if record.levelno < std_logging.WARNING:
    return False
  record.msg, record.args = one_line(record.getMessage()), ()
  record.exc_info = record.exc_text = None
  return True


def _thread_failed(args: threading.ExceptHookArgs) -> None:
  """A library's background thread failed (orbax writing a checkpoint to a full disk): one log
  line; the loop reports what it means when it waits for that work."""
  logging.warning('%s failed: %s', args.thread.name if args.thread else 'a thread',
                  one_line(args.exc_value, kind=True))


def _leave_now(code: int) -> None:
  """Exits at once, skipping exit-time hooks (the checkpoints are closed and the lock released
  by then)."""
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def _usage_error(message: str) -> None:
  """A usage error: one line, exit status 2 (as argparse's and the other commands')."""
  print(f'train.py: error: {message}', file=sys.stderr)
  sys.exit(config_lib.USAGE_ERROR)


def _join_distributed() -> None:
  """``jax.distributed.initialize`` with the flags, a bounded wait and progress while it waits.

  JAX would wait ``initialization_timeout`` in silence and then abort with a C++
  stack; a watchdog prints progress every 10 s and, at ``--coordinator_timeout``,
  one line naming the coordinator, and exits with 1 before JAX would.
  """
  given = {'--coordinator_address': FLAGS.coordinator_address,
           '--num_processes': FLAGS.num_processes, '--process_id': FLAGS.process_id}
  if any(v is not None for v in given.values()) and None in given.values():
    missing = ', '.join(k for k, v in given.items() if v is None)
    _usage_error(f'--distributed: give all three of {", ".join(given)} or none (then they come '
                 f'from the environment); missing {missing}')
  if FLAGS.num_processes is not None and FLAGS.num_processes < 1:
    _usage_error(f'--num_processes must be 1 or more, got {FLAGS.num_processes}')
  if FLAGS.process_id is not None and not 0 <= FLAGS.process_id < FLAGS.num_processes:
    _usage_error(f'--process_id must be in 0..{FLAGS.num_processes - 1} (--num_processes '
                 f'{FLAGS.num_processes}), got {FLAGS.process_id}')
  timeout = FLAGS.coordinator_timeout
  if not 0 < timeout < float('inf'):
    _usage_error(f'--coordinator_timeout must be a number of seconds above 0, got {timeout}')
  where = FLAGS.coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS') or 'the coordinator'
  joined = threading.Event()

  def watchdog() -> None:
    start = time.monotonic()
    while not joined.wait(min(10.0, timeout)):
      waited = time.monotonic() - start
      if waited >= timeout:
        print(f'train.py: error: could not reach the coordinator at {where} and the other '
              f'processes within {timeout:g} s (--coordinator_timeout); is process 0 running '
              'there, and are all processes started?', file=sys.stderr)
        _leave_now(1)
      print(f'train.py: waiting for the coordinator at {where} and the other processes '
            f'({waited:.0f} of {timeout:g} s)', file=sys.stderr, flush=True)

  threading.Thread(target=watchdog, name='coordinator-watchdog', daemon=True).start()
  # CPU processes exchange gradients through Gloo (GPUs use NCCL; this setting is CPU-only).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id,
                               initialization_timeout=int(timeout) + 60)  # the watchdog first
  except ValueError as e:  # no coordinator given nor found in the environment
    _usage_error(f'--distributed: {one_line(e)}')
  joined.set()


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    _usage_error(f'unexpected arguments: {" ".join(argv[1:])}')
  if FLAGS.distributed:
    _join_distributed()
  # Imported after jax.distributed.initialize, which must come before any computation.
  from jdsr import checkpoints
  from jdsr.train import loop

  if FLAGS.distributed:
    checkpoints.write_from_one_process()

  threading.excepthook = _thread_failed
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_quiet_orbax)
  logging.info('JAX %s: process %d of %d, %d devices (%s)', jax.__version__, jax.process_index(),
               jax.process_count(), jax.device_count(), jax.devices()[0].platform)
  config_lib.use_compilation_cache(FLAGS.compilation_cache)
  code = _train(loop)
  if code == 1 and FLAGS.distributed:
    # The other processes may be gone, or stuck in a collective with this one: leave without
    # jax's exit-time shutdown, which would wait for all of them at a barrier until the
    # heartbeat times out and then abort with a C++ backtrace.
    _leave_now(code)
  return code


def _train(loop) -> int:
  """Runs the loop; the exit status, with the one line that explains any other than 0."""
  try:
    result = loop.train_and_evaluate(config_lib.from_flag(_CONFIG), FLAGS.workdir)
  except loop.Stopped as e:  # SIGTERM (a scheduler, docker stop) or Ctrl-C: saved, resumable
    print(f'train.py: {e}', file=sys.stderr)
    return EXIT_INTERRUPTED if e.signal_name == 'SIGINT' else EXIT_TERMINATED
  except KeyboardInterrupt:  # a second Ctrl-C, or one in a run of several processes
    print('train.py: interrupted; the last checkpoint is intact: run the same command again to '
          'resume', file=sys.stderr)
    return EXIT_INTERRUPTED
  except (loop.TrainingError, ValueError, OSError, jax.errors.JaxRuntimeError) as e:
    if FLAGS.distributed and _lost_peer(e):
      # Another process died (killed, out of memory, its host lost): collectives fail at once.
      print(f'train.py: error: process {jax.process_index()} lost the others of this run '
            f'({one_line(e)}); the checkpoints are intact: start every process again to resume',
            file=sys.stderr)
    elif isinstance(e, jax.errors.JaxRuntimeError) and not FLAGS.distributed:
      raise  # a failure inside XLA, in one process: its traceback is worth having
    else:  # one line, not a traceback
      print(f'train.py: error: {one_line(e)}', file=sys.stderr)
    return 1
  scores = ', '.join(f'{k} {v:.4f}' for k, v in result.scalars.items())
  print(f'Done: {result.workdir} at step {int(result.state.step)}' + (f' ({scores})' if scores else ''))
  return 0


def _lost_peer(error: BaseException) -> bool:
  """Whether ``error``, or what caused it, is a collective that failed because a process is gone."""
  signs = ('Gloo', 'NCCL', 'Connection reset', 'Connection closed', 'heartbeat')
  for _ in range(8):  # the error and its causes
    if error is None:
      return False
    if any(sign in str(error) for sign in signs):
      return True
    error = error.__cause__ or error.__context__
  return False


if __name__ == '__main__':
  app.run(main, flags_parser=config_lib.parse_flags)
