#!/usr/bin/env bash
# Set up a virtual environment in .venv (Python 3.11) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-test.txt
# Two workers, each test file whole on one (its module fixtures are built once).
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile tests "$@"
