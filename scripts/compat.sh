#!/usr/bin/env bash
# The compatibility lane: jdsr on the newest JAX, as GPU machines have it today.
#
#   bash scripts/compat.sh             the newest jax, flax, optax, orbax (Python 3.12)
#   bash scripts/compat.sh --oldest    the oldest versions pyproject.toml allows (Python 3.11)
#
# In a virtual environment of its own (.venv-compat or .venv-oldest; `python3.12` or
# `python3.11` on the PATH, or pyenv's), with those four packages, it checks that
# `pip install .` keeps that jax and brings neither TensorFlow nor PyTorch, then runs the
# golden forward and TLSC tests, phase-3 training on photos and jdsr-restore on a photo.
set -euo pipefail
cd "$(dirname "$0")/.."
phase() { echo "== [$(date -u +%H:%M:%S) +${SECONDS}s] $*"; }
phase "start"

VERSION=3.12
VENV=.venv-compat
PACKAGES=(--upgrade jax flax optax orbax-checkpoint)
if [ "${1:-}" = "--oldest" ]; then
  VERSION=3.11
  VENV=.venv-oldest
  # The lower bounds of pyproject.toml (tests/e2e/test_compat.py checks that they agree).
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
# Compiled programs are cached per lane: a cache is for the jaxlib that wrote it.
export XDG_CACHE_HOME="$PWD/$VENV/cache" JAX_COMPILATION_CACHE_DIR="$PWD/$VENV/cache/jax-tests"
"$P" -m pip install -q --upgrade pip
"$P" -m pip install -q "${PACKAGES[@]}"
before=$("$P" -c 'import jax, jaxlib; print(jax.__version__, jaxlib.__version__)')
phase "jax/jaxlib $before, $("$P" -c 'import flax, optax, orbax.checkpoint as o; print("flax", flax.__version__, "optax", optax.__version__, "orbax-checkpoint", o.__version__)')"

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

# jdsr's core install: neither TensorFlow nor PyTorch comes with it (they are extras).
"$P" -m pip install -q -e . pytest >"$VENV/install.log" 2>&1 || { cat "$VENV/install.log"; exit 1; }
after=$("$P" -c 'import jax, jaxlib; print(jax.__version__, jaxlib.__version__)')
[ "$before" = "$after" ] || { echo "compat: jax changed: $before -> $after" >&2; exit 1; }
"$P" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ("tensorflow", "torch")))' \
  || { echo "compat: the core install brought TensorFlow or PyTorch" >&2; exit 1; }

phase "golden forward and TLSC"
"$P" -m pytest -q -p no:cacheprovider tests/nn/test_model.py::test_golden_forward \
  tests/nn/test_model.py::test_golden_forward_with_tlsc
phase "phase-3 training (tiny model, 2 steps, on the sample photos), no TensorFlow"
work=$(mktemp -d)
"$P" train.py --config configs/tiny.py --workdir "$work/run" --config.phase=joint \
  --config.num_train_steps=2 --config.data.source=photos --config.data.photos_dir=samples/sharp \
  --config.data.val_photos_dir=samples/sharp 2>"$work/train.log" | tail -1 \
  || { tail -20 "$work/train.log"; exit 1; }
ls "$work/run"/events.out.tfevents.* >/dev/null
phase "the demo (eval.py), as scripts/demo.sh runs it on the core install"
"$P" eval.py --output_dir "$work/demo" >"$work/demo.log" 2>&1 || { tail -20 "$work/demo.log"; exit 1; }
"$P" -c "import json, sys; s = json.load(open(sys.argv[1])); assert s['scored'] == 4 and not s['failed'], s" \
  "$work/demo/summary.json"
phase "jdsr-restore on a photo"
"$VENV/bin/jdsr-restore" samples/blurry/chelsea.png -o "$work/chelsea_x4.png"
"$P" -c "from PIL import Image; import sys; s = Image.open(sys.argv[1]).size; assert s == (448, 300), s" "$work/chelsea_x4.png"
phase "jdsr-export and jdsr-convert: what the core install needs, it has"
"$VENV/bin/jdsr-export" --out "$work/exported" --no_saved_model
"$VENV/bin/jdsr-convert" --out "$work/demo_checkpoint"
phase "a runtime that is not installed is one line naming its extra"
if "$VENV/bin/jdsr-restore" samples/blurry/chelsea.png -o "$work/ov.png" --runtime openvino 2>"$work/ov.err"; then
  echo "compat: --runtime openvino ran without OpenVINO" >&2; exit 1
fi
cat "$work/ov.err"
grep -q "pip install '.\[openvino\]' in jdsr's folder" "$work/ov.err" && [ "$(wc -l <"$work/ov.err")" -le 2 ] \
  || { echo "compat: not one line naming the extra" >&2; exit 1; }
rm -rf "$work"
echo "compat: jax $after, all passed"
