"""Run a Python script as if TensorFlow were not installed.

    python -m tests.without_tensorflow SCRIPT [ARGS...]

``import tensorflow`` (and any submodule) raises ModuleNotFoundError, and
``importlib.util.find_spec`` says it is not there (as libraries such as etils
and tensorflow-datasets ask before they import it). Then SCRIPT runs as
``__main__``. The tests of the TensorFlow-free path use it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import runpy
import sys


def _tensorflow(name: str) -> bool:
  return name == 'tensorflow' or name.startswith('tensorflow.')


class _Absent(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if _tensorflow(name):
      raise ModuleNotFoundError(f"No module named '{name}'", name=name)
    return None


def block() -> None:
  """Make TensorFlow look uninstalled to this process."""
  find_spec = importlib.util.find_spec

  def without(name, package=None):
    return None if _tensorflow(name) else find_spec(name, package)

  importlib.util.find_spec = without
  sys.meta_path.insert(0, _Absent())


if __name__ == '__main__':
  block()
  script, sys.argv = sys.argv[1], sys.argv[1:]
  runpy.run_path(script, run_name='__main__')
