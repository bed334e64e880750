"""The README's "full ROS 2 install" section, executed: a colcon workspace with this repository and
its nested fer_msgs, ``colcon build`` (colcon-core/colcon-ros from PyPI, installed by
scripts/bootstrap.sh dev with ../shared/vendor), ``source install/setup.bash`` and ``ros2 launch
fer_perception fer.launch.py`` from the install space, with faces arriving and a clean Ctrl-C.

On this pip-only machine the ROS underlay is the venv (its ``setup.bash`` stands for
``/opt/ros/<distro>/setup.bash``) and fer_msgs gets the wheel CMake arguments of
scripts/build_interfaces.sh --cmake-args; everything else is the README's commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import roscli
import rosharness as rh

pytestmark = [pytest.mark.ros, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def work_tree_files() -> list[str]:
    """The files of this checkout (tracked and new, not ignored): what `git clone` would give."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    return [f for f in out.splitlines() if f and (REPO / f).is_file()]


def bash(script: str, env: dict[str, str], cwd: Path, log: Path, timeout: float) -> str:
    done = subprocess.run(["bash", "-c", "set -eo pipefail\n" + script], env=env, cwd=str(cwd),
                          capture_output=True, text=True, timeout=rh.patience(timeout))
    log.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"{script}\n-> {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ros2 = roscli.require_ros2_cli()
    colcon = Path(sys.prefix) / "bin" / "colcon"
    if not colcon.exists():
        pytest.fail(f"{colcon} missing: run scripts/bootstrap.sh dev", pytrace=False)
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / "fer_perception"  # cd ~/ws/src && git clone <this repository> fer_perception
    for rel in work_tree_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    env = roscli.cli_env({k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH")})
    cmake_args = subprocess.run(["bash", str(REPO / "scripts" / "build_interfaces.sh"), "--venv", sys.prefix,
                                 "--cmake-args"], capture_output=True, text=True, check=True).stdout.split()
    script = (f"source {sys.prefix}/setup.bash\n"
              "colcon build --paths src/fer_perception src/fer_perception/fer_msgs "
              "--event-handlers console_direct- --cmake-args " + " ".join(f"'{a}'" for a in cmake_args))
    bash(script, env, ws, ws / "colcon_build.log", timeout=600)
    assert ros2.exists()
    return ws


def test_colcon_finds_both_packages_only_with_both_paths(workspace):
    """colcon stops descending at the first package.xml (the repository root), so the nested fer_msgs
    needs its own path, as the README says; with both, both build."""
    env = roscli.cli_env(dict(os.environ))
    bare = bash("colcon list --names-only", env, workspace, workspace / "colcon_list.log", 60).split()
    assert bare == ["fer_perception"]
    both = bash("colcon list --names-only --paths src/fer_perception src/fer_perception/fer_msgs", env,
                workspace, workspace / "colcon_list2.log", 60).split()
    assert sorted(both) == ["fer_msgs", "fer_perception"]


def test_install_space_has_the_ament_package(workspace):
    prefix = workspace / "install" / "fer_perception"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "fer_perception").is_file()
    share = prefix / "share" / "fer_perception"
    for rel in ("package.xml", "launch/fer.launch.py", "config/fer.yaml", "config/fastdds_shm.xml"):
        assert (share / rel).is_file(), rel
    for exe in ("fer_node", "fer_camera", "fer_bringup", "fer_listener", "fer_demo"):
        assert os.access(prefix / "lib" / "fer_perception" / exe, os.X_OK), exe
    models = list((prefix / "lib").glob("python3*/site-packages/fer_perception/models/arch1_fer2013.onnx"))
    assert models, "the shipped model is not installed with the package"
    assert (workspace / "install" / "fer_msgs" / "share" / "fer_msgs" / "msg" / "FaceEmotion.msg").is_file()


def test_ros2_launch_from_the_install_space(workspace, obama_jpg):
    from fer_msgs.msg import FaceEmotionArray

    env = rh.isolated_env(workspace / "ros_log")
    env = {k: v for k, v in env.items() if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH")}
    env["PATH"] = f"{sys.prefix}/bin:{env['PATH']}"
    client = rh.RosClient(env, "colcon_test_observer")
    faces = client.collect(FaceEmotionArray, "/fer_node/faces", stamped=False)
    launch = roscli.GroupProcess(
        ["bash", "-c", f"source {sys.prefix}/setup.bash && source install/setup.bash && exec ros2 launch "
                       f"fer_perception fer.launch.py camera:=true image:={obama_jpg} rate:=5 backend:=onnxruntime"],
        env, workspace / "launch.log", cwd=workspace)
    try:
        rh.wait_until(lambda: any(m.faces for m in client.snapshot(faces)), rh.patience(90),
                      "faces from the system launched from the install space")
        install = workspace / "install" / "fer_perception"
        assert f"model {install}/lib/" in launch.output()  # the install space's Python package and model
        # ... and launch_ros's package lookup (executables, share) the install space's too
        where = bash(f"source {sys.prefix}/setup.bash && source install/setup.bash && "
                     "ros2 pkg prefix fer_perception && ros2 pkg executables fer_perception",
                     env, workspace, workspace / "pkg.log", 60).split("\n")
        assert where[0] == str(install)
        assert "fer_perception fer_node" in where and "fer_perception fer_camera" in where
        rc = launch.ctrl_c(timeout=30)
        roscli.assert_clean_launch_exit(rc, launch.output(), ["fer_camera", "fer_node"])
    finally:
        launch.kill()
        client.close()
