"""Train one phase of the network.

    python train.py --config configs/phase1_deblur.py --workdir runs/phase1 \
        --config.data.reds_manual_dir=/data/REDS --config.data.reds_data_dir=/data/tfds
    python train.py --config configs/phase2_sr.py --workdir runs/phase2 \
        --config.init_from=runs/phase1 ...
    python train.py --config configs/phase3_joint.py --workdir runs/phase3 \
        --config.init_from=runs/phase2 ...

Running the same command again resumes from the latest checkpoint in
--workdir. Any config field can be set with --config.FIELD=VALUE; see
configs/default.py for all of them and jdsr/loop.py for what is written.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

# TensorFlow (the input pipeline) logs its own INFO and WARNING lines, among them the whole
# Python traceback of a data error that this program reports in one line: keep its errors only
# (at least; 3 silences those too).
os.environ['TF_CPP_MIN_LOG_LEVEL'] = max(os.environ.get('TF_CPP_MIN_LOG_LEVEL', '0'), '2')

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from jdsr import config as config_lib

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
config_lib.define_compilation_cache_flag()
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def _quiet_orbax(record: std_logging.LogRecord) -> bool:
  """Drop orbax's INFO chatter (a dozen lines per checkpoint); keep its warnings."""
  return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if FLAGS.distributed:
    # CPU processes exchange gradients through Gloo (GPUs use NCCL; this setting is CPU-only).
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  # Imported after jax.distributed.initialize, which must come before any computation.
  from jdsr import checkpoints
  from jdsr.train import loop

  if FLAGS.distributed:
    checkpoints.write_from_one_process()

  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_quiet_orbax)
  logging.info('JAX %s: process %d of %d, %d devices (%s)', jax.__version__, jax.process_index(),
               jax.process_count(), jax.device_count(), jax.devices()[0].platform)
  config_lib.use_compilation_cache(FLAGS.compilation_cache)
  try:
    result = loop.train_and_evaluate(config_lib.from_flag(_CONFIG), FLAGS.workdir)
  except (loop.TrainingError, ValueError, OSError) as e:  # one line, not a traceback
    print(f'train.py: error: {e}', file=sys.stderr)
    return 1
  scores = ', '.join(f'{k} {v:.4f}' for k, v in result.scalars.items())
  print(f'Done: {result.workdir} at step {int(result.state.step)}' + (f' ({scores})' if scores else ''))
  return 0


if __name__ == '__main__':
  app.run(main, flags_parser=config_lib.parse_flags)
