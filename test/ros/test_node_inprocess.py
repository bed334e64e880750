"""FerNode as a component: in one process, on a MultiThreadedExecutor with other nodes, over DDS.

A fake pipeline stands in for detection + inference so these tests control exactly which faces a
frame has, how long processing takes and when the backend fails. Pixel (0, 0) of each test image
encodes what the fake returns: channel 0 = number of faces, channel 1 = horizontal shift of the
boxes, channel 2 = 255 to make the backend raise.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import rosharness as rh

from fer_perception.labels import EMOTION_LABELS, valence_arousal
from fer_perception.pipeline import FaceResult, PerceptionPipeline, PipelineInfo

pytestmark = pytest.mark.ros

HAPPY = np.full(7, 0.1 / 6, np.float32)
HAPPY[EMOTION_LABELS.index("happy")] = 0.9


class FakePipeline:
    """A PerceptionPipeline whose faces are written in the frame itself (see the module docstring)."""

    labels = EMOTION_LABELS
    model_confidence_threshold = None

    def __init__(self) -> None:
        self.delay = 0.0
        self.calls = 0
        self.limits = (0, 64)
        self.closed = False
        self.probs_override = None  # probabilities to return instead of HAPPY

    def process(self, bgr):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        n, shift, fail = (int(v) for v in bgr[0, 0])
        if fail == 255:
            raise RuntimeError("simulated backend failure")
        probs = np.full(7, np.nan, np.float32) if fail == 128 else (
            HAPPY if self.probs_override is None else self.probs_override)
        return [FaceResult(box=(20 + 100 * k + shift, 30, 60 + 5 * k, 60 + 5 * k), detection_score=0.8,
                           keypoints=None, crop=np.zeros((48, 48), np.uint8), probabilities=probs.copy(),
                           labels=EMOTION_LABELS)
                for k in range(n)]

    def info(self) -> PipelineInfo:
        return PipelineInfo(backend="fake", model="fake.onnx", detector="fake-detector")

    def stage_seconds(self) -> dict[str, float]:
        return {"detect": 0.001, "infer": 0.002}

    def set_face_limits(self, min_face_size: int, max_faces: int) -> None:
        self.limits = (min_face_size, max_faces)

    def close(self) -> None:
        self.closed = True


def test_fake_pipeline_implements_the_interface():
    assert isinstance(FakePipeline(), PerceptionPipeline)


def frame(n: int, shift: int = 0, fail: bool = False, nan: bool = False):
    img = np.zeros((240, 320, 3), np.uint8)
    img[0, 0] = (n, shift, 255 if fail else 128 if nan else 0)
    return img


class Harness:
    """FerNode + a helper node on one MultiThreadedExecutor."""

    def __init__(self, env, overrides: dict | None = None) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from fer_msgs.msg import FaceEmotionArray
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image

        from fer_perception.ros.node import FerNode

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
        self.fake = FakePipeline()
        params = {"qos_reliability": "reliable", "qos_depth": 1, "diagnostics_period": 0.2, **(overrides or {})}
        self.fer = FerNode(pipeline_factory=lambda options: self.fake, context=self.ctx,
                           cli_args=["--ros-args", "-r", "image:=/inproc/image"],
                           parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.helper = rclpy.create_node("helper", context=self.ctx)
        self.lock = threading.Lock()
        self.faces: list = []
        self.diags: list = []
        self.helper.create_subscription(FaceEmotionArray, "/fer_node/faces", self._on_faces, 100)
        self.helper.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 100)
        self.pub = self.helper.create_publisher(Image, "/inproc/image", 10)
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.ctx)
        self.executor.add_node(self.fer)
        self.executor.add_node(self.helper)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        self.wait(lambda: self.pub.get_subscription_count() > 0, 10, "fer_node to subscribe")
        self.wait(lambda: self.helper.count_publishers("/fer_node/faces") > 0, 10, "faces publisher")
        self.seq = 0

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:
            pass

    def _on_faces(self, msg):
        with self.lock:
            self.faces.append(msg)

    def _on_diag(self, msg):
        with self.lock:
            self.diags.append(msg)

    @staticmethod
    def wait(pred, timeout, what):
        return rh.wait_until(pred, timeout, what, interval=0.01)

    def publish(self, img, frame_id: str = "cam"):
        from fer_perception.ros.image_msgs import numpy_to_image

        self.seq += 1
        msg = numpy_to_image(img, "bgr8")
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + self.seq, 7 * self.seq
        msg.header.frame_id = frame_id
        self.pub.publish(msg)
        return (msg.header.stamp.sec, msg.header.stamp.nanosec)

    def faces_for(self, stamp, timeout=5.0):
        def find():
            with self.lock:
                for m in self.faces:
                    if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp:
                        return m
            return None

        return self.wait(find, timeout, f"FaceEmotionArray with stamp {stamp}")

    def status(self):
        with self.lock:
            for arr in reversed(self.diags):
                for st in arr.status:
                    if st.name.startswith("fer_node"):
                        return st
        return None

    def wait_status(self, pred, timeout, what):
        from fer_perception.ros.diagnostics import status_level, status_values

        def check():
            st = self.status()
            return st is not None and pred(status_level(st), status_values(st), st.message) and st

        return self.wait(check, timeout, what)

    def close(self):
        import rclpy

        self.executor.shutdown(timeout_sec=2)
        self.fer.destroy_node()
        self.helper.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        self.thread.join(timeout=5)


@pytest.fixture
def harness(ros_env, request):
    overrides = getattr(request, "param", None)
    h = Harness(ros_env, overrides)
    yield h
    h.close()


def test_every_frame_gets_a_message_with_the_source_header_and_stable_ids(harness):
    counts = [2, 2, 0, 2, 2, 1]
    outs = []
    for i, n in enumerate(counts):
        stamp = harness.publish(frame(n, shift=4 * i), frame_id=f"cam{i}")
        outs.append(harness.faces_for(stamp))
    for i, (n, out) in enumerate(zip(counts, outs)):
        assert out.header.frame_id == f"cam{i}"
        assert len(out.faces) == n  # also the empty frame gets its (empty) message
        assert list(out.labels) == list(EMOTION_LABELS)
        for f in out.faces:
            assert f.label == "happy" and f.confidence == pytest.approx(0.9, abs=1e-5)
            assert sum(f.probabilities) == pytest.approx(1.0, abs=1e-5)
            va = valence_arousal(np.asarray(f.probabilities))
            assert (f.valence, f.arousal) == pytest.approx((float(va[0]), float(va[1])), abs=1e-5)
            assert f.detection_score == pytest.approx(0.8)
    # Largest face first; ids follow the faces (through the empty frame, max_missed=5).
    left_ids = {o.faces[-1].track_id for o in outs if len(o.faces) == 2} | {outs[-1].faces[0].track_id}
    right_ids = {o.faces[0].track_id for o in outs if len(o.faces) == 2}
    assert len(left_ids) == 1 and len(right_ids) == 1 and left_ids != right_ids
    assert outs[0].faces[0].roi.x_offset == 120 and outs[0].faces[0].roi.width == 65


def test_labels_topic_is_latched_json(harness):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    got = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    harness.helper.create_subscription(String, "/fer_node/labels", got.append, qos)  # joins late
    harness.wait(lambda: got, 5, "latched labels")
    assert json.loads(got[0].data) == list(EMOTION_LABELS)


# qos_depth 10: every one of the 10 frames must reach the node's callback, so that the drops counted
# are the node's own (the newest-frame worker's). With a depth-1 reader, DDS replaces a sample the
# executor has not taken yet before the node sees it (uncountable, and timing-dependent: Jazzy's
# rclpy executor under load misses the 20 ms gaps). A deep DDS queue must not become a backlog either.
@pytest.mark.parametrize("harness", [{"qos_depth": 10}], indirect=True)
def test_works_on_the_newest_frame_and_counts_drops(harness):
    harness.fake.delay = 0.3
    stamps = []
    for i in range(10):
        stamps.append(harness.publish(frame(1)))
        time.sleep(0.02)
    last = harness.faces_for(stamps[-1], timeout=5)  # the newest frame is always processed
    assert last is not None
    time.sleep(0.4)
    with harness.lock:
        processed = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in harness.faces]
    assert len(processed) <= 4, processed  # no backlog of 10 x 0.3 s
    st = harness.wait_status(lambda lvl, v, m: int(v["frames_received"]) == 10, 5, "10 frames received")
    from fer_perception.ros.diagnostics import status_values

    v = status_values(st)
    assert int(v["dropped_frames"]) >= 6
    assert int(v["frames_received"]) == int(v["frames_processed"]) + int(v["dropped_frames"])
    assert int(v["frames_processed"]) == len(processed)


def test_backend_failure_is_an_error_diagnostic_and_the_node_recovers(harness):
    harness.faces_for(harness.publish(frame(1)))
    harness.wait_status(lambda lvl, v, m: lvl == 0, 5, "OK status")
    harness.publish(frame(1, fail=True))
    st = harness.wait_status(lambda lvl, v, m: lvl == 2, 5, "ERROR status")
    assert "simulated backend failure" in st.message
    good = harness.faces_for(harness.publish(frame(2)))  # keeps going
    assert len(good.faces) == 2
    st = harness.wait_status(lambda lvl, v, m: lvl == 0, 5, "OK again after recovery")
    from fer_perception.ros.diagnostics import status_values

    assert status_values(st)["backend_errors"] == "1"
    # A model that returns NaN is a backend failure too (not an internal error of the node).
    harness.publish(frame(1, nan=True))
    st = harness.wait_status(lambda lvl, v, m: lvl == 2, 5, "ERROR status for NaN output")
    assert "invalid probabilities" in st.message
    assert len(harness.faces_for(harness.publish(frame(1))).faces) == 1
    harness.wait_status(lambda lvl, v, m: lvl == 0 and v["backend_errors"] == "2", 5, "OK again")
    assert harness.fer.exit_code is None


@pytest.mark.parametrize("harness", [{"exit_on_backend_error": True}], indirect=True)
def test_exit_on_backend_error(harness):
    harness.faces_for(harness.publish(frame(1)))
    harness.publish(frame(1, fail=True))
    harness.wait(lambda: harness.fer.exit_code is not None, 5, "exit request")
    assert harness.fer.exit_code == 3


def test_enabled_parameter_switches_perception_off_and_on(harness):
    from rclpy.parameter import Parameter

    harness.faces_for(harness.publish(frame(1)))
    [res] = harness.fer.set_parameters([Parameter("enabled", value=False)])
    assert res.successful
    harness.wait(lambda: harness.pub.get_subscription_count() == 0, 5, "unsubscribe")
    n_before = len(harness.faces)
    harness.publish(frame(1))
    time.sleep(0.5)
    assert len(harness.faces) == n_before
    harness.wait_status(lambda lvl, v, m: v["state"] == "disabled" and lvl == 0, 5, "disabled status")
    [res] = harness.fer.set_parameters([Parameter("enabled", value=True)])
    assert res.successful
    harness.wait(lambda: harness.pub.get_subscription_count() == 1, 5, "resubscribe")
    time.sleep(0.3)  # discovery of the new subscription by the publisher
    out = harness.faces_for(harness.publish(frame(1)))
    assert len(out.faces) == 1


def test_live_parameters_apply_and_bad_values_are_rejected_with_a_reason(harness):
    from rclpy.parameter import Parameter

    assert len(harness.faces_for(harness.publish(frame(3))).faces) == 3
    [res] = harness.fer.set_parameters([Parameter("max_faces", value=1)])
    assert res.successful
    assert harness.fake.limits == (24, 1)  # passed on through PerceptionPipeline.set_face_limits
    out = harness.faces_for(harness.publish(frame(3)))
    assert len(out.faces) == 1 and out.faces[0].roi.width == 70  # the largest one
    [res] = harness.fer.set_parameters([Parameter("confidence_threshold", value=0.95)])
    assert res.successful
    assert harness.faces_for(harness.publish(frame(1))).faces[0].label == "unknown"
    for name, value, fragment in [("confidence_threshold", 1.5, "out of range"),
                                  ("smoothing", "median", "one of ema, window, none"),
                                  ("backend", "tflite", "read-only"),
                                  ("max_faces", "two", "")]:
        [res] = harness.fer.set_parameters([Parameter(name, value=value)])
        assert not res.successful and res.reason and fragment in res.reason, (name, res.reason)
    assert harness.fer.get_parameter("smoothing").value == "ema"


def test_annotated_image_only_while_someone_subscribes(harness, monkeypatch):
    import fer_perception.ros.node as node_mod
    from sensor_msgs.msg import Image

    calls = []
    real = node_mod.draw_faces
    monkeypatch.setattr(node_mod, "draw_faces", lambda *a, **k: calls.append(1) or real(*a, **k))
    harness.faces_for(harness.publish(frame(1)))
    assert calls == []
    got = []
    harness.helper.create_subscription(Image, "/fer_node/annotated", got.append, 10)
    harness.wait(lambda: harness.fer.shell._annotated_pub.get_subscription_count() > 0, 5, "annotated subscriber")
    stamp = harness.publish(frame(1))
    harness.wait(lambda: any((m.header.stamp.sec, m.header.stamp.nanosec) == stamp for m in got), 5,
                 "annotated image")
    assert calls and got[-1].encoding == "bgr8" and (got[-1].width, got[-1].height) == (320, 240)


def test_live_rejections_are_the_documented_reasons(harness):
    """docs/node.md's table of refused run-time changes is what a SetParameters call answers."""
    import ast

    from rclpy.parameter import Parameter

    doc = (rh.REPO / "docs" / "node.md").read_text()
    block = doc.split("<!-- live-rejections:begin -->")[1].split("<!-- live-rejections:end -->")[0]
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split(" | ")]
            for line in block.strip().splitlines()[2:]]
    assert len(rows) >= 6
    for change, reason, _worded_by in rows:
        name, _, value = change.partition(": ")
        value = ast.literal_eval(value) if value[:1] in "'0123456789-" else value
        [res] = harness.fer.set_parameters([Parameter(name, value=value)])
        assert not res.successful and res.reason == reason, (change, res.reason)


@pytest.mark.parametrize("given", [None, 0.5])
def test_the_models_own_confidence_threshold_unless_given_at_start_up(ros_env, monkeypatch, given):
    """A sidecar's confidence_threshold (FakePipeline's here) replaces fer.yaml's default; a value given
    at start-up (-p, --params-file, parameter_overrides) wins over it."""
    monkeypatch.setattr(FakePipeline, "model_confidence_threshold", 0.77)
    h = Harness(ros_env, {} if given is None else {"confidence_threshold": given})
    try:
        expected = 0.77 if given is None else given
        assert h.fer.get_parameter("confidence_threshold").value == pytest.approx(expected)
        low = np.full(7, 0.3 / 6, np.float32)
        low[EMOTION_LABELS.index("happy")] = 0.7  # between 0.5 and 0.77
        h.fake.probs_override = low
        face = h.faces_for(h.publish(frame(1))).faces[0]
        assert face.label == ("unknown" if given is None else "happy")
    finally:
        h.close()
