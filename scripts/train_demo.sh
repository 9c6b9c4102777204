#!/usr/bin/env bash
# Train the demo model (configs/demo.py) through the three phases on photographs,
# then write it to jdsr/models/demo (the model that ships with jdsr). Run again to resume.
#   bash scripts/train_demo.sh TRAIN_DIRS [VAL_DIR [RUNS_DIR]] [--config.FIELD=VALUE ...]
# TRAIN_DIRS: folders of sharp photographs, comma-separated (the shipped model: CBSD68 and
# McMaster, see docs/training.md); VAL_DIR: a few photographs to validate on (default: the
# last of TRAIN_DIRS); RUNS_DIR: the workdirs (default: runs/demo). Arguments that start with
# -- go to each train.py (--config.num_train_steps=10 for a short try).
set -euo pipefail
cd "$(dirname "$0")/.."
POSITIONAL=() FLAGS=()
for arg in "$@"; do
  case "$arg" in
    --*) FLAGS+=("$arg") ;;
    *) POSITIONAL+=("$arg") ;;
  esac
done
if [ ${#POSITIONAL[@]} -lt 1 ] || [ ${#POSITIONAL[@]} -gt 3 ]; then
  echo "usage: bash scripts/train_demo.sh TRAIN_DIRS [VAL_DIR [RUNS_DIR]] [--config.FIELD=VALUE ...]" >&2
  exit 2
fi
TRAIN=${POSITIONAL[0]}
VAL=${POSITIONAL[1]:-${TRAIN##*,}}
RUNS=${POSITIONAL[2]:-runs/demo}
PYTHON=${PYTHON:-python}
DATA=(--config.data.photos_dir="$TRAIN" --config.data.val_photos_dir="$VAL" ${FLAGS[@]+"${FLAGS[@]}"})
"$PYTHON" train.py --config configs/demo.py:deblur --workdir "$RUNS/phase1" "${DATA[@]}"
"$PYTHON" train.py --config configs/demo.py:sr --workdir "$RUNS/phase2" \
    --config.init_from="$RUNS/phase1" "${DATA[@]}"
"$PYTHON" train.py --config configs/demo.py:joint --workdir "$RUNS/phase3" \
    --config.init_from="$RUNS/phase2" "${DATA[@]}"
# Ship phase 3's best checkpoint (by validation PSNR): parameters and model config only.
"$PYTHON" -m jdsr.cli.convert --checkpoint "$RUNS/phase3" --out jdsr/models/demo --overwrite
