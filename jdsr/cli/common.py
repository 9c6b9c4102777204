"""What the console scripts share: one way to parse, load the model, log and fail.

Every console script (``jdsr-restore``, ``jdsr-convert``, ``jdsr-export``):

* parses with ``argparse`` (``parser``), so ``--help`` answers before JAX loads;
* takes the model as ``--checkpoint`` (whatever ``jdsr.load`` takes; the demo
  model when omitted) and ``--config`` (a ``.pth``'s architecture, ``model_arg``);
* keeps the libraries' logs (orbax, absl, TensorFlow) quiet unless ``-v``;
* reports a failure as one line, ``PROG: error: MESSAGE``, and exits with 1
  (2 for a usage error, as argparse does; 130 on Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import signal
import sys
import threading
import warnings
from typing import Callable

from jdsr.errors import one_line


class Terminated(KeyboardInterrupt):
  """SIGTERM, raised where the program is: what it was writing is finished as on Ctrl-C."""


def _terminate(signum, frame) -> None:
  raise Terminated()


class Failure(Exception):
  """A failure to report as one line (``run`` prints it and exits with ``code``)."""

  def __init__(self, message: str, code: int = 1):
    super().__init__(message)
    self.code = code


def parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
  """An ArgumentParser with the options every console script has (``-v``)."""
  p = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
  p.add_argument('-v', '--verbose', action='store_true',
                 help="show the libraries' log messages (orbax, absl, TensorFlow)")
  return p


def add_model_args(p: argparse.ArgumentParser, *, default_demo: bool = True) -> None:
  """``--checkpoint`` and ``--config``: the model to load."""
  default = ' (default: the demo model that ships with jdsr)' if default_demo else ''
  p.add_argument('--checkpoint', '--weights', default=None, required=not default_demo,
                 help='official .pth, jdsr checkpoint directory or training workdir' + default
                      + " (--weights, as the official test.py names it)")
  p.add_argument('--config', default=None, metavar='NAME_OR_FILE',
                 help="a .pth's architecture: " + ', '.join(_model_names()) + ", or a config "
                      "file (configs/*.py) whose `model` is it (default: 'paper'; a jdsr "
                      'checkpoint carries its own)')


def _model_names() -> list[str]:
  from jdsr import config as config_lib
  return list(config_lib.MODELS)


def quiet(verbose: bool) -> None:
  """Silence the libraries' INFO logs and known warnings, unless ``verbose``."""
  if verbose:
    return
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ start-up lines
  for name in ('absl', 'orbax', 'jax', 'tensorflow'):
    logging.getLogger(name).setLevel(logging.WARNING)
  try:
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)
  except ImportError:
    pass
  warnings.filterwarnings('ignore', message='.*[Tt]ype handler registry.*')


def load_model(args: argparse.Namespace, *, announce: bool = True):
  """The model of ``--checkpoint``/``--config``; a Failure (one line) if it cannot be had."""
  import jdsr
  from jdsr import config as config_lib

  try:
    config = None if args.config is None else config_lib.resolve_model(args.config)
    if args.checkpoint is None:
      if announce:
        print('Using the demo model that ships with jdsr, a small demonstration; pass '
              '--checkpoint (e.g. the official weights) for real results.', file=sys.stderr)
      return jdsr.load(jdsr.DEMO_MODEL, config)
    return jdsr.load(args.checkpoint, config)
  except ValueError as e:  # CheckpointError, a bad --config
    raise Failure(one_line(e)) from None


def load_input_model(args: argparse.Namespace, out: str | os.PathLike):
  """The ``--checkpoint`` model of a command that writes ``out``, which must not touch the input.

  ``out`` may not be the input checkpoint, hold it or be inside it (``--overwrite``
  would replace it); a Failure otherwise.
  """
  import jdsr
  from jdsr import checkpoints

  try:
    source = checkpoints.resolve(args.checkpoint or jdsr.DEMO_MODEL).resolve()
  except ValueError as e:
    raise Failure(one_line(e)) from None
  target = pathlib.Path(out).resolve()
  if target == source or target in source.parents or source in target.parents:
    raise Failure(f'{out}: that is the input checkpoint, holds it or is inside it; '
                  'choose another --out')
  return load_model(args, announce=False)


def entry_points(prog: str, body: Callable[[list[str] | None], int]
                 ) -> tuple[Callable[[list[str] | None], int], Callable[[], None]]:
  """``(main, run)`` of a console script whose work is ``body(argv)``.

  ``main(argv=None)`` returns the exit status (``run`` of this module: failures as one
  line); ``run()`` is the console script's entry point, which exits with it.
  """
  def main(argv: list[str] | None = None) -> int:
    return run(prog, body, argv)

  def entry() -> None:
    sys.exit(main())

  main.__doc__ = f'``{prog}`` with these arguments; returns its exit status.'
  entry.__doc__ = f'The ``{prog}`` console script.'
  return main, entry


def run(prog: str, main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
  """``main(argv)``, with a Failure, an OSError or a signal reported in one line; the exit code.

  SIGTERM (a scheduler, ``docker stop``, ``kill``) ends the command as Ctrl-C
  does, the files finished so far kept (a video's restored frames included),
  with the exit status 143; Ctrl-C with 130.
  """
  previous = None
  if threading.current_thread() is threading.main_thread():
    previous = signal.signal(signal.SIGTERM, _terminate)
  try:
    return main(argv)
  except Failure as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return e.code
  except OSError as e:
    print(f'{prog}: error: {one_line(e)}', file=sys.stderr)
    return 1
  except Terminated:
    print(f'{prog}: terminated', file=sys.stderr)
    return 143
  except KeyboardInterrupt:
    print(f'{prog}: interrupted', file=sys.stderr)
    return 130
  finally:
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)
