#!/usr/bin/env bash
# Set up a virtual environment in .venv (Python 3.11) and run the test suite.
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh --fast     unit and golden tests only: no end-to-end runs
# Further arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The full run keeps each test file on one worker (its module fixtures are built once);
# the fast tier spreads single tests over both.
SELECT=()
DIST=loadfile
if [ "${1:-}" = "--fast" ]; then
  SELECT=(-m "not slow")
  DIST=worksteal
  shift
fi
PYTHON=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-test.txt
exec .venv/bin/python -m pytest -q -n 2 --dist "$DIST" --durations=25 "${SELECT[@]}" tests "$@"
