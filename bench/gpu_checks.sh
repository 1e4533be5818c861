#!/usr/bin/env bash
# The checks that need a real CUDA GPU, in one go: the GPU tests (parity with the CPU
# engine on synthetic audio, and on real clips when the corpus is there) and the GPU
# benchmark.  Run from the repository root after `pip install -e ".[gpu,test]"` (CUDA 12)
# or `pip install -e ".[gpu-cuda13,test]"` (CUDA 13):
#
#   bash bench/gpu_checks.sh [CORPUS] [RESULTS] [PYTEST ARGS...]
#
# CORPUS defaults to ../shared/corpora/ravdess; RESULTS (default bench/RESULTS.md) gets the
# benchmark's lines appended; PYTHON (default python) is the interpreter.
# Every check runs; the script exits non-zero when any of them failed.
set -uo pipefail
corpus=${1:-../shared/corpora/ravdess}
results=${2:-bench/RESULTS.md}
shift $(( $# < 2 ? $# : 2 ))
failed=()
check() {  # check NAME COMMAND...: run one check, note its failure
  local name=$1
  shift
  "$@" || { echo "GPU CHECK FAILED: $name (exit $?)" >&2; failed+=("$name"); }
}
check "nvidia-smi" nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
check "CuPy and Numba import" ${PYTHON:-python} -c "import cupy, numba; print('cupy',
cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(), '| numba',
numba.__version__)"
check "GPU tests" env SERFAST_RAVDESS="$corpus" timeout 300 ${PYTHON:-python} -m pytest -q -rs \
    tests/test_gpu.py "$@"
check "GPU benchmark" timeout 300 ${PYTHON:-python} bench/bench_gpu.py --corpus "$corpus" \
    --record "$results"
if (( ${#failed[@]} )); then
  echo "GPU checks failed: ${failed[*]}" >&2
  exit 1
fi
echo "GPU checks passed"
