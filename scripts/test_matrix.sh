#!/usr/bin/env bash
# Run the whole test suite under the CPU settings that change numerical results, so a
# tolerance that only holds on the developer's CPU shows up here rather than on CI's next
# machine. Each setting gets a fresh pytest process; a summary line per setting is
# printed at the end and the exit status is non-zero if any setting failed.
#
#   OMP_NUM_THREADS       1 / 2      thread count: changes reduction order in torch and BLAS
#   ATEN_CPU_CAPABILITY   default / avx2   torch's kernel choice (scalar vs AVX2 vectorised)
#   lowest-SIMD setting   NumPy without its X86_V3 (AVX2/FMA) loops, OpenBLAS's Prescott
#                         kernels, MKL limited to SSE4.2, torch scalar kernels
#
# usage: bash scripts/test_matrix.sh [extra pytest args]   (PY=... to choose the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOGS=$(mktemp -d)
declare -a NAMES RESULTS
run() {  # run NAME ENV=VALUE...
    local name=$1; shift
    echo "=== $name: $*"
    if env "$@" "$PY" -m pytest -q -p no:cacheprovider "${EXTRA[@]}" >"$LOGS/$name.log" 2>&1; then
        RESULTS+=("ok    $name: $(tail -1 "$LOGS/$name.log")")
    else
        RESULTS+=("FAIL  $name: $(tail -1 "$LOGS/$name.log") (log: $LOGS/$name.log)")
        grep -E '^(FAILED|ERROR) ' "$LOGS/$name.log" | sed 's/^/      /'
    fi
    echo "${RESULTS[-1]}"
}
EXTRA=("$@")
"$PY" - <<'EOF'
import platform, numpy, torch
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"cpu: {cpu}; torch {torch.__version__} (capability {torch.backends.cpu.get_cpu_capability()}); numpy {numpy.__version__}")
EOF
run omp1-default OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default
run omp2-default OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=default
run omp1-avx2 OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2
run omp2-avx2 OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=avx2
run lowest-simd OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=default NPY_DISABLE_CPU_FEATURES=X86_V3 \
    OPENBLAS_CORETYPE=Prescott MKL_ENABLE_INSTRUCTIONS=SSE4_2
echo "--- summary"
printf '%s\n' "${RESULTS[@]}"
! printf '%s\n' "${RESULTS[@]}" | grep -q '^FAIL'
