"""The ``ros2`` commands the docs show, run as written against a launched system (``ros2 launch
fer_perception fer.launch.py lifecycle:=true image_topic:=...``): ``ros2 lifecycle set/get``,
``ros2 topic echo /fer_node/faces``, ``ros2 param set /fer_node enabled false``. The upstream
ros2cli comes from ../shared/vendor (skips without it). One launched system for all of them, walked
through the life of a managed node in order; the ros2 daemon the commands start is stopped at the end.
"""

from __future__ import annotations

import time

import pytest

import roscli
import rosharness as rh

pytestmark = pytest.mark.ros
IMAGE_TOPIC = "/robot/head/image"


@pytest.fixture(scope="module")
def system(tmp_path_factory, face_frames):
    ros2 = roscli.require_ros2_cli()
    from fer_msgs.msg import FaceEmotionArray
    from sensor_msgs.msg import Image

    from fer_perception.ros.image_msgs import numpy_to_image

    tmp = tmp_path_factory.mktemp("ros2_cli")
    env = roscli.cli_env(rh.isolated_env(tmp / "ros_log"))
    client = rh.RosClient(env, "cli_test_camera")
    faces = client.collect(FaceEmotionArray, "/fer_node/faces")
    pub = client.publisher(Image, IMAGE_TOPIC, reliable=True)
    frame = numpy_to_image(face_frames["one"], "bgr8")

    def publish():
        frame.header.stamp = client.node.get_clock().now().to_msg()
        pub.publish(frame)

    client.node.create_timer(0.1, publish)  # a 10 Hz camera
    launch = roscli.ros2_launch(ros2, ["lifecycle:=true", f"image_topic:={IMAGE_TOPIC}", "backend:=onnxruntime"],
                                env, tmp / "launch.log")
    try:
        yield {"ros2": ros2, "env": env, "client": client, "faces": faces, "launch": launch, "tmp": tmp}
    finally:
        launch.kill()
        client.close()
        subprocess_env = dict(env)
        try:  # `ros2 param`/`lifecycle` spawn the ros2 daemon (for this domain): stop it
            roscli.ros2_command(ros2, ["daemon", "stop"], subprocess_env, timeout=30)
        except AssertionError:
            pass


def ros2(system, *args: str, timeout: float = 60.0, retry_for: float = 20.0) -> str:
    return roscli.ros2_command(system["ros2"], list(args), system["env"], timeout=timeout, retry_for=retry_for)


def faces_since(system, t0: float) -> list:
    return [m for t, m in system["client"].snapshot(system["faces"]) if t > t0]


def assert_no_faces_for(system, seconds: float) -> None:
    time.sleep(0.5)  # a frame in flight when the change was made may still be answered
    t0 = time.monotonic()
    time.sleep(seconds)
    assert not faces_since(system, t0), "fer_node still publishes faces"


def wait_faces(system, t0: float, what: str) -> list:
    return rh.wait_until(lambda: [m for m in faces_since(system, t0) if m.faces], rh.patience(60), what)


def test_lifecycle_set_configure_and_activate(system):
    system["launch"].wait_for_output("process started", 30)

    def unconfigured():
        try:
            return "unconfigured" in ros2(system, "lifecycle", "get", "/fer_node", retry_for=0)
        except AssertionError:  # "Node not found" while it starts
            return False

    rh.wait_until(unconfigured, rh.patience(60), "fer_node's lifecycle services", interval=0.5)
    assert not faces_since(system, 0.0)  # a managed node does nothing before it is activated
    assert "Transitioning successful" in ros2(system, "lifecycle", "set", "/fer_node", "configure")
    assert ros2(system, "lifecycle", "get", "/fer_node").startswith("inactive")
    t0 = time.monotonic()
    assert "Transitioning successful" in ros2(system, "lifecycle", "set", "/fer_node", "activate")
    assert ros2(system, "lifecycle", "get", "/fer_node").startswith("active")
    wait_faces(system, t0, "faces after activate")


def test_the_launched_node_takes_the_shipped_models_threshold(system):
    """`ros2 launch` with its default params_file gives no confidence_threshold: the shipped model's
    sidecar sets it (fer.yaml's 0.4 is only the fallback), and the start log says so."""
    from fer_perception.inference import DEFAULT_MODEL_PATH, read_sidecar

    threshold = read_sidecar(DEFAULT_MODEL_PATH).confidence_threshold
    assert threshold is not None, "the shipped sidecar names no confidence_threshold"
    system["launch"].wait_for_output(f"confidence_threshold {threshold:g} from the model's sidecar", 30)
    out = ros2(system, "param", "get", "/fer_node", "confidence_threshold")
    assert f"{threshold:g}" in out.split(":")[-1], out


def test_topic_echo_faces(system):
    """``ros2 topic echo /fer_node/faces`` (no --once: as the docs show it), ended with Ctrl-C."""
    echo = roscli.GroupProcess([system["ros2"], "topic", "echo", "/fer_node/faces"], system["env"],
                               system["tmp"] / "echo.log")
    try:
        echo.wait_for_output("label:", 60)
        out = echo.output()
        assert "faces:" in out and "confidence:" in out and "frame_id:" in out
    finally:
        echo.ctrl_c(timeout=20)


def test_param_set_enabled_false_stops_and_true_resumes(system):
    out = ros2(system, "param", "set", "/fer_node", "enabled", "false")
    assert "Set parameter successful" in out
    assert "False" in ros2(system, "param", "get", "/fer_node", "enabled")
    assert_no_faces_for(system, 1.5)
    t0 = time.monotonic()
    assert "Set parameter successful" in ros2(system, "param", "set", "/fer_node", "enabled", "true")
    wait_faces(system, t0, "faces after enabled true")


def test_param_set_refusal_reason_reaches_the_cli(system):
    out = roscli.GroupProcess([system["ros2"], "param", "set", "/fer_node", "smoothing", "median"],
                              system["env"], system["tmp"] / "refused.log")
    out.popen.wait(timeout=rh.patience(60))
    assert "smoothing must be one of ema, window, none" in out.output(), out.output()
    out.close_log()


def test_lifecycle_deactivate_then_ctrl_c_exits_cleanly(system):
    assert "Transitioning successful" in ros2(system, "lifecycle", "set", "/fer_node", "deactivate")
    assert_no_faces_for(system, 1.5)
    launch = system["launch"]
    rc = launch.ctrl_c(timeout=30)
    roscli.assert_clean_launch_exit(rc, launch.output(), ["fer_node"])
