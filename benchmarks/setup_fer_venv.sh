#!/usr/bin/env bash
# Create benchmarks/.venv-fer with the `fer` library (the comparison target of benchmarks/vs_fer.py).
#
#   bash benchmarks/setup_fer_venv.sh          # idempotent: a no-op when the venv already works
#
# CPU only, no torch: the dependencies come from benchmarks/requirements-fer.txt, then
# `pip install --no-deps fer==25.10.3`. The venv is git-ignored and is not part of the product.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv="$here/.venv-fer"
fer_version=25.10.3
python=${PYTHON:-}
if [ -z "$python" ]; then
  # The interpreter of the main .venv (same Python version), else python3.11 / python3.
  if [ -x "$here/../.venv/bin/python" ]; then
    python=$("$here/../.venv/bin/python" -c 'import sys; print(sys._base_executable)')
  else
    python=$(command -v python3.11 || command -v python3)
  fi
fi
check='import warnings; warnings.simplefilter("ignore"); from fer.fer import FER; import fer, cv2, numpy; print("fer", fer.__version__ if hasattr(fer, "__version__") else "?", "ok")'
if [ -x "$venv/bin/python" ] && TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
  echo "benchmarks/.venv-fer is ready"
  exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements-fer.txt"
"$venv/bin/python" -m pip install --quiet --no-deps "fer==$fer_version"
TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" -c "$check"
