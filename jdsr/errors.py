"""The errors jdsr reports, and how any exception becomes one line for the user.

Every command of jdsr reports a failure as one line naming what failed (a
file, a checkpoint, an option), never as a traceback: ``one_line`` is the one
place that turns an exception into that line.
"""

from __future__ import annotations


def install_hint(extra: str) -> str:
  """How to install one of jdsr's extras (``[onnx]``, ``[torch]``...): from jdsr's folder, as jdsr
  is installed from a clone, not from a package index."""
  return f"pip install '.[{extra}]' in jdsr's folder"


class CheckpointError(ValueError):
  """A checkpoint that cannot be read, does not fit the model, or is not a checkpoint at all."""


class TrainingError(RuntimeError):
  """A run that cannot go on: a non-finite loss, a checkpoint it cannot write or resume from,
  a workdir another run holds, or a checkpoint that does not fit the config."""


def one_line(e: BaseException | str, *, kind: bool = False, last: bool = False) -> str:
  """The first (``last``: the last) non-empty line of an exception's message.

  ``kind`` prefixes the exception's type (``OSError: ...``), for messages that
  quote a library's error; an exception with no message gives its type name.
  Control characters that would break the line are escaped.
  """
  text = str(e)
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  name = type(e).__name__ if isinstance(e, BaseException) else ''
  if not lines:
    return name or '(no message)'
  line = (lines[-1] if last else lines[0]).replace('\r', '\\r')
  return f'{name}: {line}' if kind and name else line
