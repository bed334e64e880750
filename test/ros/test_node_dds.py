"""fer_node (and fer_camera, fer_listener) as separate processes over real DDS, with the real
pipeline (BlazeFace + a random-weight ARCH-1 ONNX model on ONNX Runtime).

Each test runs in its own ROS domain (ros_env); every wait is bounded.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def node_args(topic: str, model, *extra: str) -> list[str]:
    args = ["--ros-args", "-r", f"image:={topic}", "-p", f"model_path:={model}", "-p", "backend:=onnxruntime",
            "-p", "threads:=1"]
    for e in extra:
        args += ["-p", e]
    return args


def stamp_of(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def stamped(img_msg, seq: int):
    img_msg.header.stamp.sec, img_msg.header.stamp.nanosec = 5000 + seq, 1000 * seq
    img_msg.header.frame_id = f"f{seq}"
    return img_msg


def find_faces(observer, faces: list, stamp, timeout: float = 10.0):
    def find():
        for m in observer.snapshot(faces):
            if stamp_of(m) == stamp:
                return m
        return None

    return observer.wait_until(find, timeout, f"FaceEmotionArray for stamp {stamp}")


def assert_clean_exit(proc, sig) -> None:
    rc = proc.stop(sig, timeout=15)
    out = proc.output()
    assert rc == 0, f"exit status {rc} after {sig!r}:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]


def test_hamilton_clip_from_fer_camera_process(ros_env, procs, observer, random_onnx, hamilton_clip,
                                                two_people_jpg):
    from diagnostic_msgs.msg import DiagnosticArray
    from fer_msgs.msg import FaceEmotionArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    topic = "/ham/image_raw"
    n_frames = 150  # 5 s at 30 Hz; the clip shows a face from about frame 20 and continuously from 82
    node = procs.start("fer_perception.ros.node",
                       node_args(topic, random_onnx, "diagnostics_period:=0.5", "stale_timeout:=1.0"),
                       ros_env, "fer_node")
    faces = observer.collect(FaceEmotionArray, "/fer_node/faces", 1000)
    images = observer.collect(Image, topic, QoSProfile(depth=300, reliability=ReliabilityPolicy.RELIABLE))
    diags = observer.collect(DiagnosticArray, "/diagnostics", 100)
    node.wait_for_output("active:", 60)
    observer.wait_until(lambda: observer.node.count_publishers("/fer_node/faces") > 0, 20, "fer_node publisher")
    listener = procs.start("fer_perception.ros.listener", ["--count", "5", "--timeout", "60"], ros_env, "listener")
    listener.wait_for_output("", 1)
    time.sleep(1.0)  # listener discovery

    # The first frame waits for fer_node and this observer (DDS does not replay frames to late joiners).
    cam = procs.start("fer_perception.ros.camera_source",
                      ["--video", str(hamilton_clip), "--max-frames", str(n_frames), "--rate", "30",
                       "--wait-for-subscribers", "2", "--ros-args", "-r", f"image:={topic}"], ros_env, "fer_camera")
    assert cam.wait(timeout=60) == 0, cam.output()
    assert f"published max_frames={n_frames} frames" in cam.output()

    # Let the node finish the last frame, then compare its own counters with what arrived here.
    def settled():
        st = observer.latest_status(diags)
        if st is None:
            return None
        from fer_perception.ros.diagnostics import status_values

        v = status_values(st)
        return v if int(v["frames_processed"]) == len(observer.snapshot(faces)) and int(v["frames_received"]) > 0 \
            and time.monotonic() - observer_last[0] > 1.0 else None

    observer_last = [time.monotonic()]
    prev = [-1]

    def quiet():
        n = len(observer.snapshot(faces))
        if n != prev[0]:
            prev[0], observer_last[0] = n, time.monotonic()
        return settled()

    v = observer.wait_until(quiet, 30, "node counters to match the received messages")
    out_msgs = observer.snapshot(faces)
    img_msgs = observer.snapshot(images)
    received, processed, dropped = (int(v[k]) for k in ("frames_received", "frames_processed", "dropped_frames"))
    assert processed == len(out_msgs) > 0  # one FaceEmotionArray per processed frame
    assert received == processed + dropped + int(v["bad_input_total"])
    assert int(v["bad_input_total"]) == 0 and int(v["backend_errors"]) == 0
    assert processed >= 0.5 * len(img_msgs), (processed, len(img_msgs), v)

    # Header stamps are the source images' (and in order: the node works on the newest frame).
    img_stamps = [stamp_of(m) for m in img_msgs]
    ns = np.array([s[0] * 1e9 + s[1] for s in img_stamps])
    gaps = np.diff(ns) / 1e6
    assert len(img_stamps) >= 0.9 * n_frames, len(img_stamps)  # matched before the first frame
    print(f"observer got {len(img_stamps)} of {n_frames} images; max gap {gaps.max():.1f} ms; "
          f"node: received {received} processed {processed} dropped {dropped}")
    stamp_set = set(img_stamps)
    out_stamps = [stamp_of(m) for m in out_msgs]
    unmatched = [s for s in out_stamps if s not in stamp_set and s >= min(img_stamps)]
    assert not unmatched, unmatched[:5]
    assert out_stamps == sorted(out_stamps) and len(set(out_stamps)) == len(out_stamps)
    assert all(m.header.frame_id == "camera_optical_frame" for m in out_msgs)  # fer_camera's default

    # Faces where people are visible: the last 40 % of the frames all show a face.
    late = set(img_stamps[int(0.6 * len(img_stamps)):])
    late_msgs = [m for m in out_msgs if stamp_of(m) in late]
    assert len(late_msgs) >= 10
    with_face = [m for m in late_msgs if m.faces]
    assert len(with_face) >= 0.8 * len(late_msgs), [len(m.faces) for m in late_msgs]
    # Stable track id across these consecutive frames.
    ids = Counter(m.faces[0].track_id for m in with_face)
    top_id, top_n = ids.most_common(1)[0]
    assert top_n >= 0.8 * len(with_face), ids
    for m in with_face:
        f = m.faces[0]
        assert f.roi.width >= 24 and 0 <= f.roi.x_offset < 640 and f.roi.x_offset + f.roi.width <= 640
        assert f.label in ("unknown",) + tuple(m.labels) and len(f.probabilities) == 7

    # fer_listener (another process) printed five messages in its format and exited by itself.
    assert listener.wait(timeout=20) == 0, listener.output()
    lines = [ln for ln in listener.output().splitlines() if re.match(r"^\d+\.\d{9} camera_optical_frame \d+ faces?", ln)]
    assert len(lines) == 5, listener.output()

    # The camera went away: stale WARN. Another camera process on the same topic: processing resumes.
    lvl, v, message = observer.wait_status(diags, lambda lvl, v, m: lvl == 1, 15, "stale WARN after the camera")
    assert "no image on /ham/image_raw" in message
    n_before = len(observer.snapshot(faces))
    cam2 = procs.start("fer_perception.ros.camera_source",
                       ["--image", str(two_people_jpg), "--rate", "10", "--max-frames", "30",
                        "--ros-args", "-r", f"image:={topic}"], ros_env, "fer_camera2")
    observer.wait_until(lambda: any(len(m.faces) == 2 for m in observer.snapshot(faces)[n_before:]), 30,
                        "faces from the restarted camera")
    observer.wait_status(diags, lambda lvl, v, m: lvl == 0, 10, "OK after the camera came back")
    assert cam2.wait(timeout=30) == 0

    assert_clean_exit(node, signal.SIGINT)


def test_camera_holds_the_first_frame_until_its_subscribers_match(ros_env, procs, observer, obama_jpg):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    topic = "/held/image_raw"
    cam = procs.start("fer_perception.ros.camera_source",
                      ["--image", str(obama_jpg), "--rate", "30", "--max-frames", "5", "--wait-for-subscribers", "1",
                       "--ros-args", "-r", f"image:={topic}"], ros_env, "fer_camera")
    cam.wait_for_output("waiting for 1 subscriber(s) on /held/image_raw", 30)
    time.sleep(1.0)  # at 30 Hz it would have published its 5 frames and exited by now
    assert cam.popen.poll() is None, cam.output()
    images = observer.collect(Image, topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    assert cam.wait(timeout=30) == 0, cam.output()
    assert "published max_frames=5 frames" in cam.output()
    observer.wait_until(lambda: len(observer.snapshot(images)) == 5, 10, "all 5 frames at the late subscriber")


def _bad_images():
    from sensor_msgs.msg import Image

    from fer_perception.ros.image_msgs import numpy_to_image

    small = np.full((48, 64, 3), 90, np.uint8)
    wrong_step = numpy_to_image(small, "bgr8")
    wrong_step.step = 10
    truncated = numpy_to_image(small, "bgr8")
    truncated.data = truncated.data[:100]
    unknown = numpy_to_image(small, "bgr8")
    unknown.encoding = "bayer_xyz99"
    empty = Image(encoding="bgr8", width=0, height=0, step=0)
    return {"bad_step": wrong_step, "truncated_data": truncated, "unsupported_encoding": unknown,
            "empty_image": empty}


def _publish_until_counted(observer, pub, diags, msg, kind: str, count: int) -> None:
    """Publish ``msg`` until the node reports bad_input.<kind> >= count (a frame may be overwritten
    by the next one before it is processed, which the node counts as dropped instead)."""
    from fer_perception.ros.diagnostics import status_values

    for _ in range(5):
        pub.publish(msg)
        try:
            observer.wait_until(
                lambda: (st := observer.latest_status(diags)) is not None
                and int(status_values(st).get(f"bad_input.{kind}", 0)) >= count, 3, f"bad_input.{kind}>={count}")
            return
        except AssertionError:
            continue
    raise AssertionError(f"bad_input.{kind} never reached {count}")


def test_two_people_malformed_input_parameters_and_sigint(ros_env, procs, observer, random_onnx, two_people_jpg):
    from diagnostic_msgs.msg import DiagnosticArray
    from fer_msgs.msg import FaceEmotionArray
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from sensor_msgs.msg import Image

    from fer_perception.ros.image_msgs import numpy_to_image

    topic = "/raw/image"
    node = procs.start("fer_perception.ros.node",
                       node_args(topic, random_onnx, "qos_reliability:=reliable", "diagnostics_period:=0.25",
                                 "stale_timeout:=1.0"), ros_env, "fer_node")
    faces = observer.collect(FaceEmotionArray, "/fer_node/faces", 100)
    diags = observer.collect(DiagnosticArray, "/diagnostics", 200)
    pub = observer.node.create_publisher(Image, topic, 10)
    node.wait_for_output("active:", 60)
    observer.wait_until(lambda: pub.get_subscription_count() > 0, 20, "fer_node subscription")
    observer.wait_until(lambda: observer.node.count_publishers("/fer_node/faces") > 0, 20, "faces publisher")

    # No input yet: WARN (stale) after stale_timeout.
    lvl, v, msg = observer.wait_status(diags, lambda lvl, v, m: lvl == 1, 10, "stale WARN")
    assert "no image on /raw/image" in msg

    bgr = cv2.imread(str(two_people_jpg))
    seq = [0]

    def good():
        seq[0] += 1
        m = stamped(numpy_to_image(bgr, "bgr8"), seq[0])
        pub.publish(m)
        return find_faces(observer, faces, stamp_of(m))

    out = good()
    assert len(out.faces) == 2, out.faces
    assert out.header.frame_id == "f1"
    centres = sorted(f.roi.x_offset + f.roi.width / 2 for f in out.faces)
    assert centres[0] < bgr.shape[1] / 2 < centres[1]
    assert len({f.track_id for f in out.faces}) == 2
    observer.wait_status(diags, lambda lvl, v, m: lvl == 0 and v["faces_per_frame"] == "2.00", 10, "OK status")

    # Malformed images: each kind twice; counted, WARN, logged once per kind; the node carries on.
    for kind, bad in _bad_images().items():
        _publish_until_counted(observer, pub, diags, bad, kind, 1)
        _publish_until_counted(observer, pub, diags, bad, kind, 2)
    lvl, v, msg = observer.wait_status(diags, lambda lvl, v, m: int(v["bad_input_total"]) >= 8, 10, "bad counts")
    out = good()
    assert len(out.faces) == 2
    log = node.output()
    for kind in ("bad_step", "truncated_data", "unsupported_encoding", "empty_image"):
        assert log.count(f"bad input image ({kind})") == 1, (kind, log[-3000:])
    warn = observer.wait_until(
        lambda: any(st.name.startswith("fer_node") and st.level == b"\x01" and "bad input" in st.message
                    for arr in observer.snapshot(diags) for st in arr.status), 5, "bad-input WARN")
    assert warn

    # Parameters over the parameter services: rejected with a reason, or applied live.
    client = AsyncParameterClient(observer.node, "fer_node")
    assert client.wait_for_services(timeout_sec=10)
    for name, value, fragment in [("confidence_threshold", 1.5, "out of range"),
                                  ("smoothing", "median", "one of ema, window, none"),
                                  ("backend", "tflite", "read-only"),
                                  ("min_face_size", -3, "out of range")]:
        resp = observer.wait_future(client.set_parameters([Parameter(name, value=value)]), 10, f"set {name}")
        [res] = resp.results
        assert not res.successful and fragment in res.reason, (name, res.reason)
    resp = observer.wait_future(client.set_parameters([Parameter("max_faces", value=1)]), 10, "set max_faces")
    assert resp.results[0].successful, resp.results[0].reason
    out = good()
    assert len(out.faces) == 1

    assert_clean_exit(node, signal.SIGINT)


def test_lifecycle_and_compressed_transport(ros_env, procs, observer, random_onnx, two_people_jpg):
    from diagnostic_msgs.msg import DiagnosticArray
    from fer_msgs.msg import FaceEmotionArray
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from sensor_msgs.msg import CompressedImage

    from fer_perception.ros.diagnostics import status_values
    from fer_perception.ros.image_msgs import bgr_to_compressed

    topic = "/cmp/image"
    node = procs.start("fer_perception.ros.node",
                       ["--lifecycle"] + node_args(topic, random_onnx, "transport:=compressed",
                                                   "qos_reliability:=reliable", "diagnostics_period:=0.25"),
                       ros_env, "fer_node")
    faces = observer.collect(FaceEmotionArray, "/fer_node/faces", 100)
    diags = observer.collect(DiagnosticArray, "/diagnostics", 200)
    pub = observer.node.create_publisher(CompressedImage, topic + "/compressed", 10)
    change = observer.node.create_client(ChangeState, "/fer_node/change_state")
    get = observer.node.create_client(GetState, "/fer_node/get_state")
    assert change.wait_for_service(timeout_sec=60) and get.wait_for_service(timeout_sec=10), node.output()

    def state() -> str:
        return observer.wait_future(get.call_async(GetState.Request()), 10, "get_state").current_state.label

    def transition(tid: int) -> None:
        req = ChangeState.Request()
        req.transition.id = tid
        assert observer.wait_future(change.call_async(req), 30, f"transition {tid}").success

    assert state() == "unconfigured"
    observer.wait_status(diags, lambda lvl, v, m: v["state"] == "unconfigured", 10, "unconfigured status")
    assert pub.get_subscription_count() == 0
    transition(Transition.TRANSITION_CONFIGURE)
    assert state() == "inactive"
    transition(Transition.TRANSITION_ACTIVATE)
    assert state() == "active"
    observer.wait_until(lambda: pub.get_subscription_count() > 0, 20, "compressed subscription")
    observer.wait_until(lambda: observer.node.count_publishers("/fer_node/faces") > 0, 20, "faces publisher")

    bgr = cv2.imread(str(two_people_jpg))
    jpeg = bgr_to_compressed(bgr, "jpeg", quality=90)
    seq = [0]

    def send(msg):
        seq[0] += 1
        msg.header.stamp.sec, msg.header.stamp.nanosec = 7000 + seq[0], seq[0]
        pub.publish(msg)
        return stamp_of(msg)

    assert len(find_faces(observer, faces, send(jpeg)).faces) == 2
    corrupt = bgr_to_compressed(bgr, "jpeg", quality=90)
    corrupt.data = corrupt.data[: len(corrupt.data) // 2]  # cut short: no end-of-image marker
    _publish_until_counted(observer, pub, diags, corrupt, "corrupt_compressed", 1)
    assert len(find_faces(observer, faces, send(jpeg)).faces) == 2  # keeps going
    assert node.output().count("bad input image (corrupt_compressed)") == 1

    # Deactivate: perception off (unsubscribed, nothing published), process alive; activate: back.
    transition(Transition.TRANSITION_DEACTIVATE)
    assert state() == "inactive"
    observer.wait_until(lambda: pub.get_subscription_count() == 0, 10, "unsubscribe on deactivate")
    n = len(observer.snapshot(faces))
    send(jpeg)
    time.sleep(0.8)
    assert len(observer.snapshot(faces)) == n
    observer.wait_status(diags, lambda lvl, v, m: v["state"] == "inactive", 10, "inactive status")
    transition(Transition.TRANSITION_ACTIVATE)
    observer.wait_until(lambda: pub.get_subscription_count() > 0, 10, "resubscribe on activate")
    time.sleep(0.3)
    assert len(find_faces(observer, faces, send(jpeg)).faces) == 2
    v = status_values(observer.latest_status(diags))
    assert v["backend"] == "onnxruntime" and v["detector"] == "blazeface" and v["detector_backend"] == "onnxruntime"

    assert_clean_exit(node, signal.SIGTERM)


def test_missing_model_is_one_clear_error_and_nonzero_exit(ros_env, procs, tmp_path):
    missing = tmp_path / "no_such_model.onnx"
    node = procs.start("fer_perception.ros.node", ["--ros-args", "-p", f"model_path:={missing}"], ros_env, "fer_node")
    rc = node.wait(timeout=60)
    out = node.output()
    assert rc == 2, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fer_node: error:") and str(missing) in lines[0], out
    assert "Traceback" not in out


def test_corrupt_model_and_bad_startup_parameter(ros_env, procs, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 this is not an onnx model" * 20)
    p1 = procs.start("fer_perception.ros.node", ["--ros-args", "-p", f"model_path:={corrupt}"], ros_env, "corrupt")
    p2 = procs.start("fer_perception.ros.node", ["--ros-args", "-p", "smoothing:=median"], ros_env, "badparam")
    for p, fragment in ((p1, str(corrupt)), (p2, "smoothing must be one of ema, window, none")):
        rc = p.wait(timeout=60)
        out = p.output()
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert rc == 2 and len(lines) == 1 and fragment in lines[0] and "Traceback" not in out, out
