#!/usr/bin/env bash
# Retrain the four demo systems on the 2-core CPU machine, on the demo training photos
# (shared/data/photos_17k minus the held-out slice, plus imagenet_sample_1k), warm-started
# from the previous release's weights with an equal budget for every system:
# STEPS steps x batch 16, 200 warm-up steps, lr 1e-3, linear decay over the last DECAY steps.
#
#   python -m pixcolor.holdout prepare --data ../shared/data --out data/photos
#   bash scripts/train_demo_cpu.sh lane-a &   # PixColor's PixelCNN, then LRAC
#   bash scripts/train_demo_cpu.sh lane-b &   # LTBC, then CIC, then PixColor's refinement
#
# Every command resumes from the newest checkpoint in its run folder (a restart continues,
# never restarts). Seed a run folder from a committed resumable state by copying that file
# into it as ckpt_<step>.pt before starting. Logs: $RUNS/<name>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/photos/train}
RUNS=${RUNS:-runs/train_demo}
STEPS=${STEPS:-1500}
DECAY=${DECAY:-500}
REFINE_STEPS=${REFINE_STEPS:-1000}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$RUNS/warm"
# The weights every run starts from: the release before this one, kept beside the runs so
# that shipping the new checkpoints does not change what a resumed run started from.
for f in pixcolor/checkpoints/pixcolor_small.pt baselines/checkpoints/{cic,lrac,ltbc}_small.pt; do
    [ -e "$RUNS/warm/$(basename "$f")" ] || cp "$f" "$RUNS/warm/"
done
common=(--data "$DATA" --resume --steps "$STEPS" --decay-steps "$DECAY" --num-workers 1
        --ckpt-every 100 --keep-last 3 --log-every 25)

pixcolor_stage() {  # pixcolor_stage STAGE STEPS
    $PY -m pixcolor train "$1" "${common[@]}" --steps "$2" --out "$RUNS/$1" \
        --warm-start "$RUNS/warm/pixcolor_small.pt" >"$RUNS/$1.log" 2>&1
}
baseline() {  # baseline NAME
    $PY -m baselines train "$1" "${common[@]}" --out "$RUNS/$1" \
        --warm-start "$RUNS/warm/$1_small.pt" >"$RUNS/$1.log" 2>&1
}

case "${1:-}" in
    lane-a) pixcolor_stage pixelcnn "$STEPS"; baseline lrac ;;
    lane-b) baseline ltbc; baseline cic; pixcolor_stage refine "$REFINE_STEPS" ;;
    *) echo "usage: $0 lane-a|lane-b" >&2; exit 2 ;;
esac
