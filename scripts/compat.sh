#!/usr/bin/env bash
# The compatibility lane: jdsr on the newest JAX, as GPU machines have it today.
#
#   bash scripts/compat.sh             the newest jax, flax, optax, orbax (Python 3.12)
#   bash scripts/compat.sh --oldest    the oldest versions pyproject.toml allows (Python 3.11)
#
# In a virtual environment of its own (.venv-compat or .venv-oldest; `python3.12` or
# `python3.11` on the PATH, or pyenv's), with those four packages and neither TensorFlow
# nor PyTorch, it checks that `pip install .` keeps that jax, then runs the golden forward
# and TLSC tests, one phase-3 training step and jdsr-restore on a photo.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.12
VENV=.venv-compat
PACKAGES=(--upgrade jax flax optax orbax-checkpoint)
if [ "${1:-}" = "--oldest" ]; then
  VERSION=3.11
  VENV=.venv-oldest
  # The lower bounds of pyproject.toml (tests/test_compat.py checks that they agree).
  PACKAGES=(jax==0.10.0 jaxlib==0.10.0 flax==0.12.8 optax==0.2.5 orbax-checkpoint==0.11.17)
fi

PY=
for candidate in "python$VERSION" /root/.pyenv/versions/"$VERSION".*/bin/"python$VERSION"; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c '' 2>/dev/null; then
    PY=$candidate
    break
  fi
done
[ -n "$PY" ] || { echo "compat: no Python $VERSION (python$VERSION on the PATH, or pyenv's)" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
P="$VENV/bin/python"
"$P" -m pip install -q --upgrade pip
"$P" -m pip install -q "${PACKAGES[@]}"
before=$("$P" -c 'import jax, jaxlib; print(jax.__version__, jaxlib.__version__)')
echo "== jax/jaxlib $before, $("$P" -c 'import flax, optax, orbax.checkpoint as o; print("flax", flax.__version__, "optax", optax.__version__, "orbax-checkpoint", o.__version__)')"

# What `pip install .` would do here: it must not replace this jax.
"$P" -m pip install -q --dry-run --report "$VENV/report.json" . >/dev/null
"$P" - "$VENV/report.json" <<'PY'
import json, sys
import jax
report = json.load(open(sys.argv[1]))
wanted = {i['metadata']['name'].lower(): i['metadata']['version'] for i in report['install']}
replaced = {n: v for n, v in wanted.items() if n in ('jax', 'jaxlib') or n.startswith('jax-cuda')}
if replaced:
  sys.exit(f'compat: pip install . would replace jax {jax.__version__}: {replaced}')
print(f'pip install . keeps jax {jax.__version__} ({len(wanted)} other packages to install)')
PY

# jdsr without TensorFlow and PyTorch: its own code, and what the lane's steps import.
# (pip then lists the TensorFlow and PyTorch requirements it left out: kept in a log.)
"$P" -m pip install -q --no-deps -e . >"$VENV/install.log" 2>&1 || { cat "$VENV/install.log"; exit 1; }
"$P" -m pip install -q ml_collections absl-py numpy Pillow tqdm pypng tifffile av pytest
after=$("$P" -c 'import jax, jaxlib; print(jax.__version__, jaxlib.__version__)')
[ "$before" = "$after" ] || { echo "compat: jax changed: $before -> $after" >&2; exit 1; }

echo "== golden forward and TLSC"
"$P" -m pytest -q -p no:cacheprovider tests/test_model.py::test_golden_forward \
  tests/test_model.py::test_golden_forward_with_tlsc
echo "== a phase-3 training step"
"$P" -m benchmarks.train_step --model tiny --steps 1
echo "== jdsr-restore on a photo"
out=$(mktemp -d)
"$VENV/bin/jdsr-restore" samples/blurry/chelsea.png -o "$out/chelsea_x4.png"
"$P" -c "from PIL import Image; import sys; s = Image.open(sys.argv[1]).size; assert s == (448, 300), s" "$out/chelsea_x4.png"
rm -rf "$out"
echo "compat: jax $after, all passed"
