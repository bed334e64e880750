#!/usr/bin/env bash
# The main job, from nothing: sets up .venv (first run only), then runs the demo: a camera source,
# the fer_node with the shipped model on the CPU backend, and a console listener; writes an
# annotated video to out/fer_demo.mp4. Arguments go to fer_demo, e.g.
#   scripts/demo.sh                       # built-in face (scikit-image's astronaut), looped
#   scripts/demo.sh --video clip.mp4      # a video file
#   scripts/demo.sh --device 0            # a V4L2 camera
#   scripts/demo.sh --topic /camera/image_raw   # an existing ROS camera topic
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/bootstrap.sh runtime
export ROS_LOG_DIR="${ROS_LOG_DIR:-$root/.ros_log}"
exec "$root/.venv/bin/fer_demo" "$@"
