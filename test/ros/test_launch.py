"""``ros2 launch fer_perception fer.launch.py``, for real: the upstream launch/launch_ros from
../shared/vendor, the package found through the ament index of the venv (scripts/bootstrap.sh
registers it). One launched system per source, shared by the assertions about it:

* camera on the video ../shared/media/hamilton_clip.mp4: faces arrive on /fer_node/faces with the
  camera's optical frame and header, camera_info beside the image; Ctrl-C ends every process cleanly;
* an external image topic (``image_topic:=``, no fer_camera): faces arrive for frames this test
  publishes; Ctrl-C ends it cleanly.

And: every launch argument the launch file declares is documented in README.md.
"""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest

import roscli
import rosharness as rh

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "fer.launch.py"


def declared_launch_arguments() -> list[str]:
    tree = ast.parse(LAUNCH_FILE.read_text())
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"]


def test_every_launch_argument_is_documented_in_readme():
    names = declared_launch_arguments()
    assert len(names) >= 12, names
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| Launch argument |"):]
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", table, re.M)}
    missing = [n for n in names if n not in rows]
    assert not missing, f"launch arguments missing from README.md's launch-argument table: {missing}"


@pytest.fixture(scope="module")
def video_launch(tmp_path_factory, hamilton_clip):
    """ros2 launch with fer_camera on the video (looped), and an observer of its topics."""
    ros2 = roscli.require_ros2_cli()
    from fer_msgs.msg import FaceEmotionArray
    from sensor_msgs.msg import CameraInfo, Image

    tmp = tmp_path_factory.mktemp("launch_video")
    env = roscli.cli_env(rh.isolated_env(tmp / "ros_log"))
    client = rh.RosClient(env, "launch_test_observer")
    faces = client.collect(FaceEmotionArray, "/fer_node/faces", stamped=False)
    images = client.collect(Image, "/camera/image_raw", rh.RosClient.qos(False, 5), stamped=False)
    infos = client.collect(CameraInfo, "/camera/camera_info", rh.RosClient.qos(False, 5), stamped=False)
    launch = roscli.ros2_launch(ros2, ["camera:=true", f"video:={hamilton_clip}", "loop:=true",
                                       "rate:=15", "backend:=onnxruntime"], env, tmp / "launch.log")
    try:
        rh.wait_until(lambda: any(m.faces for m in client.snapshot(faces)), rh.patience(90),
                      "a FaceEmotionArray with a face from the launched system")
        # Best-effort 640x360 frames can lose fragments on a loaded machine: wait for one whole frame.
        rh.wait_until(lambda: client.snapshot(images) and client.snapshot(infos), rh.patience(30),
                      "an image and a camera_info from the launched fer_camera")
        yield {"launch": launch, "client": client, "faces": faces, "images": images, "infos": infos}
    finally:
        launch.kill()
        client.close()


def test_launch_with_camera_on_video_delivers_faces(video_launch):
    client = video_launch["client"]
    faces = client.snapshot(video_launch["faces"])
    with_face = [m for m in faces if m.faces]
    assert with_face, "no face arrived"
    assert all(m.header.frame_id == "camera_optical_frame" for m in faces)  # REP-103 optical frame
    labels = list(with_face[-1].labels)
    assert "happy" in labels and with_face[-1].faces[0].label in labels + ["unknown"]
    images = client.snapshot(video_launch["images"])
    assert images and images[-1].header.frame_id == "camera_optical_frame"


def test_launch_camera_publishes_camera_info_beside_the_image(video_launch):
    client = video_launch["client"]
    rh.wait_until(lambda: client.snapshot(video_launch["infos"]), rh.patience(20), "camera_info")
    info = client.snapshot(video_launch["infos"])[-1]
    image = client.snapshot(video_launch["images"])[-1]
    assert info.header.frame_id == "camera_optical_frame"
    assert (info.width, info.height) == (image.width, image.height)
    assert info.k[0] == 0.0 and list(info.d) == []  # uncalibrated: no camera_info_url given
    # every image has its camera_info with the same stamp
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in client.snapshot(video_launch["infos"])}
    assert (image.header.stamp.sec, image.header.stamp.nanosec) in stamps or len(stamps) > 1


def test_launch_ctrl_c_ends_every_process_cleanly(video_launch):
    """Ctrl-C (SIGINT to the whole group, then launch's own SIGINT to each process)."""
    launch = video_launch["launch"]
    launch.wait_for_output("active: raw images from /camera/image_raw", 10)
    rc = launch.ctrl_c(timeout=30)
    roscli.assert_clean_launch_exit(rc, launch.output(), ["fer_camera", "fer_node"])


def test_launch_on_an_external_image_topic(tmp_path, face_frames):
    ros2 = roscli.require_ros2_cli()
    from fer_msgs.msg import FaceEmotionArray
    from sensor_msgs.msg import Image

    from fer_perception.ros.image_msgs import numpy_to_image

    env = roscli.cli_env(rh.isolated_env(tmp_path / "ros_log"))
    client = rh.RosClient(env, "launch_test_publisher")
    launch = roscli.ros2_launch(ros2, ["image_topic:=/robot/head/image", "backend:=onnxruntime"], env,
                                tmp_path / "launch.log")
    try:
        faces = client.collect(FaceEmotionArray, "/fer_node/faces", stamped=False)
        pub = client.publisher(Image, "/robot/head/image", reliable=True)
        rh.wait_for_subscribers(pub, 1, rh.patience(60))
        frame = face_frames["two"]

        def answered():
            msg = numpy_to_image(frame, "bgr8")
            msg.header.frame_id = "head_camera_optical_frame"
            msg.header.stamp = client.node.get_clock().now().to_msg()
            pub.publish(msg)
            time.sleep(0.1)
            return [m for m in client.snapshot(faces) if m.faces]

        got = rh.wait_until(answered, rh.patience(60), "faces for the published frames")
        assert got[-1].header.frame_id == "head_camera_optical_frame"  # the source header is kept
        assert len(got[-1].faces) == 2
        assert "fer_camera" not in launch.output()  # no camera source without camera:=true
        rc = launch.ctrl_c(timeout=30)
        roscli.assert_clean_launch_exit(rc, launch.output(), ["fer_node"])
    finally:
        launch.kill()
        client.close()
