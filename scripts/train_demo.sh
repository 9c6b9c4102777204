#!/usr/bin/env bash
# Train the demo model (configs/demo.py) through the three phases on photographs,
# then write it to jdsr/models/demo (the model that ships with jdsr). Run again to resume.
#   bash scripts/train_demo.sh TRAIN_DIRS [VAL_DIR] [RUNS_DIR]
# TRAIN_DIRS: folders of sharp photographs, comma-separated (the shipped model: CBSD68 and
# McMaster, see docs/training.md); VAL_DIR: a few photographs to validate on (default: the
# last of TRAIN_DIRS); RUNS_DIR: the workdirs (default: runs/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/train_demo.sh TRAIN_DIRS [VAL_DIR] [RUNS_DIR]" >&2
  exit 2
fi
TRAIN=$1
VAL=${2:-${TRAIN##*,}}
RUNS=${3:-runs/demo}
PYTHON=${PYTHON:-python}
DATA=(--config.data.photos_dir="$TRAIN" --config.data.val_photos_dir="$VAL")
"$PYTHON" train.py --config configs/demo.py:deblur --workdir "$RUNS/phase1" "${DATA[@]}"
"$PYTHON" train.py --config configs/demo.py:sr --workdir "$RUNS/phase2" \
    --config.init_from="$RUNS/phase1" "${DATA[@]}"
"$PYTHON" train.py --config configs/demo.py:joint --workdir "$RUNS/phase3" \
    --config.init_from="$RUNS/phase2" "${DATA[@]}"
# Ship phase 3's best checkpoint (by validation PSNR): parameters and model config only.
"$PYTHON" -m jdsr.cli.convert --checkpoint "$RUNS/phase3" --out jdsr/models/demo --overwrite
