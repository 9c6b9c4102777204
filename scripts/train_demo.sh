#!/usr/bin/env bash
# Train the demo model (configs/demo.py) through the three phases on photos,
# then export it to jdsr/models/demo (the bundled demo model). Run again to resume where it stopped.
#   bash scripts/train_demo.sh [PHOTOS_ROOT] [RUNS_DIR]
# PHOTOS_ROOT holds cbsd68/ and mcmaster/ (training) ; kodak24 is never read.
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTOS=${1:-../shared/data/photos}
RUNS=${2:-runs/demo}
PYTHON=${PYTHON:-python}
DATA=(--config.data.photos_dir="$PHOTOS/cbsd68,$PHOTOS/mcmaster"
      --config.data.val_photos_dir="$PHOTOS/mcmaster")
"$PYTHON" train.py --config configs/demo.py:deblur --workdir "$RUNS/phase1" "${DATA[@]}"
"$PYTHON" train.py --config configs/demo.py:sr --workdir "$RUNS/phase2" \
    --config.init_from="$RUNS/phase1" "${DATA[@]}"
"$PYTHON" train.py --config configs/demo.py:joint --workdir "$RUNS/phase3" \
    --config.init_from="$RUNS/phase2" "${DATA[@]}"
# Ship phase 3's best checkpoint (by validation PSNR): parameters and model config only.
"$PYTHON" -m jdsr.convert --checkpoint "$RUNS/phase3" --out jdsr/models/demo --overwrite
