#!/usr/bin/env bash
# One short script for a lent GPU machine (torch, numpy, scipy, scikit-image, pandas, pillow,
# tqdm and pytest are preinstalled there; nothing can be installed). Phases, most important
# first, each under its own time limit so that one slow phase cannot eat the lease:
#   1. the 10,000-image throughput target (paper preset, 3 samples, 224x224): 3 batches timed
#      and extrapolated; then, if the projection is under TARGET_FULL s, the whole 10,000;
#   2. the GPU tests (tests/pixcolor/test_gpu.py);
#   3. naive vs cached sampling speed and end-to-end seconds (tools.sampling_speed);
#   4. training speed probes (paper and small presets, bf16 + channels-last) on real photos,
#      when DATA holds an image folder (e.g. data/imagenet_sample_1k, passed with carry).
# Logs go to $OUT (default out/), at most 8 files. BUDGET (s) skips phases that would start
# after it.
#   device run: bash scripts/device_check.sh          (carry: data/imagenet_sample_1k)
# Smoke test on a CPU: DEVICE=cpu QUICK=1 bash scripts/device_check.sh
set -uo pipefail
OUT=${OUT:-out}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-data/imagenet_sample_1k}
BUDGET=${BUDGET:-420}
TARGET_FULL=${TARGET_FULL:-150}
QUICK=${QUICK:-0}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
left() { echo $((BUDGET - SECONDS)); }
phase() {  # phase NAME MAX_SECONDS LOG CMD...: run CMD under min(MAX, time left), tee to LOG
  local name=$1 max=$2 log=$3; shift 3
  local t; t=$(left)
  if ((t < 20)); then echo "== $name: skipped, ${t} s of the budget left" | tee -a "$OUT/$log"; return; fi
  ((t > max)) && t=$max
  echo "== $name (limit ${t} s, at ${SECONDS} s)" | tee -a "$OUT/$log"
  timeout "$t" "$@" 2>&1 | tee -a "$OUT/$log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $SECONDS s" | tee -a "$OUT/$log"
}
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
if ((QUICK)); then tp=(--preset small --images 8 --batch-size 4 --limit-batches 1); else
  tp=(--preset paper --images 10000 --batch-size 1024 --limit-batches 3); fi
phase throughput 150 throughput.log "$PY" -m tools.throughput --device "$DEVICE" "${tp[@]}"
proj=$(grep -o '10,000 images: [0-9.]*' "$OUT/throughput.log" | tail -1 | grep -o '[0-9.]*$')
if ((! QUICK)) && [[ -n $proj ]] && (($(printf '%.0f' "$proj") <= TARGET_FULL)); then
  phase throughput_full 220 throughput.log "$PY" -m tools.throughput --device "$DEVICE" \
      --preset paper --images 10000 --batch-size 1024
fi
phase gpu_tests 120 gpu_tests.log "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/pixcolor/test_gpu.py
if ((QUICK)); then sp=(--quick); else sp=(--batches 1,16,64); fi
phase sampling_speed 120 speed.log "$PY" -m tools.sampling_speed --device "$DEVICE" "${sp[@]}"
if [[ -d $DATA ]]; then
  run=$(mktemp -d)
  for spec in "paper 64 70" "small 16 50" "small 64 50"; do
    read -r preset batch secs <<<"$spec"
    ((QUICK)) && secs=5
    phase "train_${preset}_b${batch}" $((secs + 60)) train.log "$PY" -m pixcolor train pixelcnn \
        --preset "$preset" --data "$DATA" --index "$run/index.csv" --out "$run/$preset$batch" \
        --device "$DEVICE" --batch-size "$batch" --steps 100000 --max-minutes "$(awk "BEGIN{print $secs/60}")" \
        --num-workers 5 --ckpt-every 100000 --log-every 10
    echo "log.csv of $preset, batch $batch (step, loss, lr, images/s, wall s):" >>"$OUT/train.log"
    tail -n 3 "$run/$preset$batch/log.csv" >>"$OUT/train.log" 2>/dev/null
  done
  rm -rf "$run"
fi
echo "device_check done after $SECONDS s"
