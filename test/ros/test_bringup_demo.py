"""fer_bringup and fer_demo as processes (real pipeline, random-weight model, real DDS)."""

from __future__ import annotations

import re
import signal

import cv2
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_bringup_honours_params_file_and_remaps(ros_env, procs, observer, random_onnx, two_people_jpg, tmp_path):
    from fer_msgs.msg import FaceEmotionArray

    params = tmp_path / "mine.yaml"
    params.write_text("fer_node:\n  ros__parameters:\n    max_faces: 1\n    threads: 1\n"
                      "fer_camera:\n  ros__parameters:\n    frame_id: my_cam\n")
    faces = observer.collect(FaceEmotionArray, "/custom/faces", 50)
    default_topic = observer.collect(FaceEmotionArray, "/fer_node/faces", 50)
    p = procs.start("fer_perception.ros.bringup",
                    ["--image", str(two_people_jpg), "--rate", "5", "--model", str(random_onnx),
                     "--backend", "onnxruntime", "--image-topic", "/bringup/image",
                     "--ros-args", "--params-file", str(params), "-r", "/fer_node/faces:=/custom/faces"],
                    ros_env, "bringup")
    msgs = observer.wait_until(lambda: len(observer.snapshot(faces)) >= 3 and observer.snapshot(faces), 60,
                               "faces on the remapped topic")
    assert all(len(m.faces) == 1 for m in msgs)  # max_faces from the params file (the photo has two)
    assert all(m.header.frame_id == "my_cam" for m in msgs)  # fer_camera section of the same file
    assert not observer.snapshot(default_topic)
    assert observer.node.count_subscribers("/bringup/image") >= 1
    assert p.stop(signal.SIGINT) == 0 and "Traceback" not in p.output(), p.output()


def test_demo_prints_faces_and_writes_an_annotated_video(ros_env, procs, random_onnx, two_people_jpg, tmp_path):
    out = tmp_path / "demo.mp4"
    p = procs.start("fer_perception.ros.demo",
                    ["--image", str(two_people_jpg), "--rate", "10", "--duration", "4", "--model", str(random_onnx),
                     "--output", str(out), "--print-every", "0.5"], ros_env, "demo")
    assert p.wait(timeout=90) == 0, p.output()
    text = p.output()
    assert "Traceback" not in text
    assert re.search(r"new face #\d+: \S+ \d\.\d\d", text), text
    assert re.search(r"2 faces: #\d+ \S+ \d\.\d\d @\(\d+,\d+ \d+x\d+\), #\d+", text), text
    m = re.search(r"wrote (\d+) of (\d+) source frames .*\((\d+) with their own result", text)
    assert m, text
    written, source_frames, own = (int(g) for g in m.groups())
    assert written == source_frames >= 10 and own >= 1  # one output frame per source frame
    cap = cv2.VideoCapture(str(out))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    h, w = cv2.imread(str(two_people_jpg)).shape[:2]  # 661 x 1126: mp4v needs even sizes
    assert ok and n == written and frame.shape[:2] == (h - h % 2, w - w % 2)
