#!/usr/bin/env bash
# The GPU check: the golden tests on an NVIDIA GPU, then ours against the same network in
# PyTorch there (benchmarks/vs_pytorch.py), forward and phase-3 step, fp32 and bf16, one table.
#
#   bash benchmarks/gpu_check.sh              needs an NVIDIA GPU
#   bash benchmarks/gpu_check.sh --rehearse   every step on the CPU, at small sizes
#
# It uses the jax (CUDA), flax, optax, orbax-checkpoint, torch, numpy, Pillow and pytest
# already installed and imports no TensorFlow. What it needs beyond them
# (benchmarks/gpu_packages.py lists it) is installed offline, with pip, from the wheel
# folder $JDSR_WHEELS (default: .whl), never from the internet. To prepare that folder for
# the GPU machine (Python 3.12, x86-64), on a machine that reaches PyPI:
#
#   python -m benchmarks.gpu_packages --download .whl
#
# It downloads exactly what that machine lacks (benchmarks/gpu_machine.txt lists what it
# has), dependencies included, and checks the folder fits the 64 MiB that travel with a run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${JDSR_WHEELS:-.whl}
REHEARSE=0
case "${1:-}" in
  --rehearse) REHEARSE=1 ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu_check.sh [--rehearse]" >&2; exit 2 ;;
esac

echo "== machine"
if [ "$REHEARSE" = 1 ]; then
  echo "rehearsal on the CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || {
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi failed); --rehearse runs the steps on the CPU" >&2
    exit 1; }
fi

echo "== packages"
missing=$("$PYTHON" -m benchmarks.gpu_packages --missing)
if [ -n "$missing" ]; then
  echo "missing: $missing; installing them from $WHEELS"
  [ -d "$WHEELS" ] || {
    echo "gpu_check: missing $missing, and no wheel folder $WHEELS (see the top of this script)" >&2
    exit 1; }
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$WHEELS"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  still=$("$PYTHON" -m benchmarks.gpu_packages --missing)
  [ -z "$still" ] || { echo "gpu_check: still missing after the wheels: $still" >&2; exit 1; }
fi
"$PYTHON" -c "import jax, flax, optax, torch; print('jax', jax.__version__, jax.devices(), '| flax', flax.__version__, '| optax', optax.__version__, '| torch', torch.__version__, '| CUDA for torch:', torch.cuda.is_available())"

if [ "$REHEARSE" = 1 ]; then
  PLATFORM=cpu
  # The CPU runs every golden test in the test suite; here, one of each kind, quickly.
  GOLDEN=(-m "not slow" tests/nn/test_model.py::test_golden_forward tests/train/test_losses.py
          tests/nn/test_mixed_precision.py)
  BENCH=(--device cpu --runs 1 --small)
else
  PLATFORM=cuda
  "$PYTHON" -c "import jax; assert jax.default_backend() == 'gpu', f'JAX sees no GPU: {jax.devices()}'"
  GOLDEN=(tests/nn/test_model.py tests/nn/test_layers.py tests/inference/test_inference.py tests/train/test_losses.py
          tests/nn/test_mixed_precision.py)
  BENCH=(--device cuda --runs 10)
fi

echo "== golden tests on the $PLATFORM (strict float32: no TF32)"
JAX_PLATFORMS=$PLATFORM JAX_DEFAULT_MATMUL_PRECISION=highest "$PYTHON" -m pytest -q \
  -p no:cacheprovider "${GOLDEN[@]}"

echo "== ours against PyTorch on the $PLATFORM"
"$PYTHON" -m benchmarks.vs_pytorch "${BENCH[@]}" --dtypes float32,bfloat16
