#!/usr/bin/env bash
# Idempotent set-up: creates .venv under the repository, installs the pinned dependencies,
# builds the fer_msgs interface package into the venv and installs this package (editable).
#   scripts/bootstrap.sh runtime   # what the node needs (no TensorFlow)
#   scripts/bootstrap.sh dev       # + training package, TensorFlow, test tools
# A stamp file records what was installed, so a second run does nothing and takes a second.
set -euo pipefail
profile=${1:-runtime}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv="$root/.venv"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating $venv"
  "$python" -m venv "$venv"
  # (filtered like pip_install below: find-links folders some machines configure but lack)
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip wheel setuptools 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
fi
pip_install() {
  # Some machines configure pip with find-links folders that do not exist; pip then warns once per
  # package. Those warnings say nothing about this project, so they are filtered out.
  "$venv/bin/pip" install -q --disable-pip-version-check -c requirements/constraints.txt "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

stamp_of() {  # hash of everything that decides what the install contains
  cat requirements/*.txt setup.py setup.cfg package.xml training/pyproject.toml \
      fer_msgs/CMakeLists.txt fer_msgs/package.xml fer_msgs/msg/* scripts/build_fer_msgs.sh 2>/dev/null \
    | sha256sum | cut -c1-16
}
want="$profile-$(stamp_of)"
have=$(cat "$venv/.fer_stamp_$profile" 2>/dev/null || true)
if [ "$want" = "$have" ]; then
  exit 0
fi

echo "[bootstrap] installing the $profile dependencies into .venv (first run only)"
if [ "$profile" = dev ]; then
  pip_install -r requirements/dev.txt
else
  pip_install -r requirements/runtime.txt -r requirements/build.txt
fi
echo "[bootstrap] building fer_msgs into .venv"
bash scripts/build_fer_msgs.sh "$venv"
pip_install --no-deps -e .
if [ "$profile" = dev ]; then
  pip_install --no-deps -e training
fi
echo "$want" > "$venv/.fer_stamp_$profile"
echo "[bootstrap] done"
