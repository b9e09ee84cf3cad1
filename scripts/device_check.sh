#!/usr/bin/env bash
# One short script for a lent GPU machine (torch, numpy, scipy, scikit-image, pandas, pillow,
# tqdm and pytest are preinstalled there; nothing can be installed): GPU tests, sampling speed,
# and the 10,000-image throughput target. Logs go to $OUT (default out/).
#   device run: bash scripts/device_check.sh
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log"
python3 -m bench.sampling_speed --device cuda --batches 1,16,64 2>&1 | tee "$OUT/speed.log"
python3 -m bench.throughput --preset paper --device cuda --images 10000 --batch-size 1024 \
    --limit-batches 3 2>&1 | tee "$OUT/throughput.log"
