#!/usr/bin/env bash
# The GPU check: needs an NVIDIA GPU. Runs the golden tests on the GPU, then times ours
# against the official-layout PyTorch network there (benchmarks/vs_pytorch.py), one table.
#
#   bash benchmarks/gpu_check.sh
#
# It uses the jax (CUDA), flax, optax, orbax-checkpoint, torch, numpy, Pillow and pytest
# already installed (newer than requirements.txt is fine: jax 0.11 with CUDA 13, say) and
# installs what is missing only from a folder of wheels, $JDSR_WHEELS (default: ./wheels),
# never from the internet. Nothing it runs imports TensorFlow. Prepare that folder on a
# machine with internet, for the GPU machine's Python (3.12 here):
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d wheels \
#       ml_collections absl-py PyYAML==6.0.2 tqdm
#
# (ml_collections and absl-py are pure Python; PyYAML may need --platform
# manylinux2014_x86_64.) The golden tests read the reference data from $JDSR_SHARED
# (default: ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${JDSR_WHEELS:-wheels}

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi failed)" >&2; exit 1; }

echo "== packages"
missing=$("$PYTHON" - <<'PY'
import importlib.util
need = {'jax': 'jax', 'flax': 'flax', 'optax': 'optax', 'orbax.checkpoint': 'orbax-checkpoint',
        'ml_collections': 'ml_collections', 'absl': 'absl-py', 'yaml': 'PyYAML', 'torch': 'torch',
        'numpy': 'numpy', 'PIL': 'pillow', 'tqdm': 'tqdm', 'pytest': 'pytest'}
print(' '.join(pkg for module, pkg in need.items() if importlib.util.find_spec(module) is None))
PY
)
if [ -n "$missing" ]; then
  echo "installing from $WHEELS: $missing"
  [ -d "$WHEELS" ] || { echo "gpu_check: missing $missing, and no wheel folder $WHEELS (see the top of this script)" >&2; exit 1; }
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --find-links "$WHEELS" --target "$site" $missing
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PYTHON" -c "import jax, flax, optax, torch; print('jax', jax.__version__, jax.devices(), '| flax', flax.__version__, '| optax', optax.__version__, '| torch', torch.__version__, torch.cuda.is_available())"
"$PYTHON" -c "import jax; assert jax.default_backend() == 'gpu', f'JAX sees no GPU: {jax.devices()}'"

echo "== golden tests on the GPU (strict float32: no TF32)"
JAX_PLATFORMS=cuda JAX_DEFAULT_MATMUL_PRECISION=highest "$PYTHON" -m pytest -q -p no:cacheprovider \
  tests/test_model.py tests/test_layers.py tests/test_inference.py tests/test_losses.py \
  tests/test_mixed_precision.py

echo "== ours against PyTorch on the GPU"
"$PYTHON" benchmarks/vs_pytorch.py --device cuda --dtypes float32,bfloat16 --runs 10
