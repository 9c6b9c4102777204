"""Running Python code in a subprocess from the repository root, as the tests do."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[1]


def python(code: str, *, env: dict | None = None, timeout: float = 600) -> str:
  """Runs ``code`` with this interpreter in the repository root; its stdout. Fails the test if it fails."""
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout
