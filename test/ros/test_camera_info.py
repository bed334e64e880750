"""fer_camera's camera_info: from a camera_info_url calibration (scaled to ``resize``), on the image
topic's sibling, with the image's header and the optical frame; a bad calibration file stops
fer_camera with one clear line."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fer_perception.ros.process import EXIT_STARTUP_ERROR

pytestmark = pytest.mark.ros

CALIBRATION = """\
image_width: 640
image_height: 480
camera_name: head
camera_matrix: {rows: 3, cols: 3, data: [500.0, 0, 320.0, 0, 500.0, 240.0, 0, 0, 1]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [-0.1, 0.01, 0, 0, 0]}
rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
projection_matrix: {rows: 3, cols: 4, data: [500.0, 0, 320.0, 0, 0, 500.0, 240.0, 0, 0, 0, 1, 0]}
"""


def test_camera_info_from_a_calibration_file(tmp_path, ros_env):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image

    from fer_perception.ros.camera_source import FerCamera

    calib = tmp_path / "head.yaml"
    calib.write_text(CALIBRATION)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(ros_env["ROS_DOMAIN_ID"]))
    try:
        camera = FerCamera(context=ctx, cli_args=["--ros-args", "-r", "image:=/head/image_raw"],
                           parameter_overrides=[Parameter("camera_name", value="head"),
                                                Parameter("camera_info_url", value=f"file://{calib}"),
                                                Parameter("resize", value="320x240"),
                                                Parameter("rate", value=20.0),
                                                Parameter("wait_for_subscribers", value=1)])
        listener = rclpy.create_node("camera_info_listener", context=ctx)
        infos, images = [], []
        listener.create_subscription(CameraInfo, "/head/camera_info", infos.append, 10)
        listener.create_subscription(Image, "/head/image_raw", images.append, 10)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(camera)
        executor.add_node(listener)
        deadline = time.monotonic() + 20
        while (len(infos) < 3 or len(images) < 3) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert len(infos) >= 3 and len(images) >= 3
        info = infos[-1]
        assert info.header.frame_id == "head_optical_frame" == images[-1].header.frame_id
        assert (info.width, info.height) == (320, 240) == (images[-1].width, images[-1].height)
        assert list(info.k) == [250.0, 0.0, 160.0, 0.0, 250.0, 120.0, 0.0, 0.0, 1.0]  # scaled to 320x240
        assert info.p[0] == 250.0 and info.p[6] == 120.0 and info.distortion_model == "plumb_bob"
        assert list(info.d) == pytest.approx([-0.1, 0.01, 0, 0, 0])
        image_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in images}
        assert sum((m.header.stamp.sec, m.header.stamp.nanosec) in image_stamps for m in infos) >= 2
        camera.destroy_node()
        listener.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_bad_calibration_file_is_one_line_and_status_2(tmp_path, ros_env):
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_width: 640\n")
    for url, reason in ((f"file://{bad}", "image_width and image_height are required"),
                        (str(tmp_path / "missing.yaml"), "cannot read")):
        done = subprocess.run([sys.executable, "-m", "fer_perception.ros.camera_source", "--ros-args",
                               "-p", f"camera_info_url:={url}"], env=ros_env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == EXIT_STARTUP_ERROR, done.stderr
        lines = [l for l in done.stderr.splitlines() if l.strip()]
        assert lines[-1].startswith("fer_camera: error: ") and reason in lines[-1], done.stderr
        assert "Traceback" not in done.stderr
