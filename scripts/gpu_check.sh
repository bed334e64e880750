#!/usr/bin/env bash
# The CUDA half of the TensorRT backend on a lent GPU machine (cuda-bindings, no TensorRT): one short
# run (well under 3 minutes). Writes $OUT/cuda_check.json when $OUT is set (the device tool's folder).
#   bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3}
out=${OUT:-.}
timeout 170 "$python" tools/cuda_check.py --json "$out/cuda_check.json"
