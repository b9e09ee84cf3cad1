#!/usr/bin/env bash
# Score a set of demo checkpoints on the held-out slice of the demo photos:
# the benchmark table (global_ab, global_ab_vs_grey, worse_than_grey, Lab histogram
# intersection, ...) and PixColor's calibration (held-out cross-entropy, 28-px global colour
# error of single samples against grey), each stage's own loss on the held-out photos
# (tools.heldout_loss) and where the overall colour goes wrong (analysis.global_colour).
#
#   python -m pixcolor.holdout prepare --data ../shared/data --out data/photos
#   bash scripts/eval_holdout.sh OUT [PIXCOLOR_CKPT [CIC LRAC LTBC]]
#
# Defaults: the shipped checkpoints. The held-out photos are centre-cropped to SIZE (default
# 128: their short sides are 128-192 px, so nothing is upsampled much). Outputs in OUT:
# runs/holdout/{metrics.csv,...}, table.txt, calibration.txt/.json, heldout_loss.txt/.json,
# global_colour.txt/.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOLDOUT=${HOLDOUT:-data/photos/holdout}
SIZE=${SIZE:-128}
OUT=${1:?usage: $0 OUT [PIXCOLOR_CKPT [CIC LRAC LTBC]]}
PIX=${2:-pixcolor/checkpoints/pixcolor_small.pt}
CIC=${3:-baselines/checkpoints/cic_small.pt}
LRAC=${4:-baselines/checkpoints/lrac_small.pt}
LTBC=${5:-baselines/checkpoints/ltbc_small.pt}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
$PY -m bench build-split --data "$OUT/data" --split holdout --images "$HOLDOUT" --size "$SIZE"
$PY -m bench generate --data "$OUT/data" --split holdout --runs "$OUT/runs" \
    --checkpoint "$PIX" --baseline-checkpoint "cic=$CIC" --baseline-checkpoint "lrac=$LRAC" \
    --baseline-checkpoint "ltbc=$LTBC"
$PY -m bench metrics --split holdout --runs "$OUT/runs" | tee "$OUT/table.txt"
$PY -m tools.calibration --checkpoint "$PIX" --images "$HOLDOUT" --json "$OUT/calibration.json" \
    | tee "$OUT/calibration.txt"
$PY -m tools.heldout_loss --images "$HOLDOUT" --json "$OUT/heldout_loss.json" \
    "pixelcnn=$PIX" "refine=$PIX" "cic=$CIC" "lrac=$LRAC" "ltbc=$LTBC" | tee "$OUT/heldout_loss.txt"
$PY -m analysis.global_colour "$OUT/runs/holdout" --json "$OUT/global_colour.json" \
    --methods ltbc,lrac,cic,pixcolor_s1,pixcolor_s1+pixcolor_s2+pixcolor_s3 | tee "$OUT/global_colour.txt"
