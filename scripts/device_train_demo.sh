#!/usr/bin/env bash
# Train a longer `small`-preset demo checkpoint on a lent GPU (issue 3: the CPU budget gave
# only 2,500 PixelCNN steps). Run from the repository root with the 1k ImageNet sample copied
# to data/imagenet_sample_1k (33 MB, an ignored path: pass it with the device tool's carry):
#   cp -r ../shared/data/imagenet_sample_1k data/   # once, on the CPU machine
#   device run: MINUTES=4 bash scripts/device_train_demo.sh     (carry: data/imagenet_sample_1k and data/demo)
# Trains both stages for MINUTES each (bf16 autocast and channels-last on CUDA), writes the
# combined checkpoint, the logs and a diagnostic of sample colour marginals to $OUT.
set -euo pipefail
OUT=${OUT:-out}
DATA=${DATA:-data/imagenet_sample_1k}
MINUTES=${MINUTES:-4}
STEPS=${STEPS:-100000}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
for stage in pixelcnn refine; do
  python3 -m pixcolor train "$stage" --preset small --data "$DATA" --out "$OUT/$stage" \
      --device cuda --steps "$STEPS" --max-minutes "$MINUTES" --num-workers 8 \
      --ckpt-every 1000 --keep-last 2 2>&1 | tr '\r' '\n' | grep -v "step/s\]$" > "$OUT/$stage.log" || true
  tail -n 3 "$OUT/$stage.log"
done
python3 -m pixcolor combine --pixelcnn "$(ls "$OUT"/pixelcnn/ckpt_*.pt | tail -1)" \
    --refine "$(ls "$OUT"/refine/ckpt_*.pt | tail -1)" --out "$OUT/pixcolor_small_gpu.pt"
python3 -m bench.calibration --checkpoint "$OUT/pixcolor_small_gpu.pt" --images data/demo/images \
    --device cuda | tee "$OUT/calibration.txt"
