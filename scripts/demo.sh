#!/usr/bin/env bash
# Set up a virtual environment in .venv (Python 3.11), install jdsr there (the core package,
# editable: no TensorFlow, no PyTorch) and run the demo: `python eval.py`, which restores the
# bundled samples with the bundled model. Extra arguments go to eval.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
.venv/bin/python eval.py "$@"
echo "jdsr is installed in .venv: 'source .venv/bin/activate' puts jdsr-restore and its other commands on the PATH."
