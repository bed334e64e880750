"""vision_msgs out (publish_vision_msgs): ~/detections (Detection2DArray, one hypothesis per class)
and the latched ~/label_info (class ids and names from the model's sidecar), over DDS."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from inprocess_node import FEAR, FakeFacePipeline, InProcessFer, fake_box, fake_frame, with_stamp

pytestmark = pytest.mark.ros

if importlib.util.find_spec("vision_msgs") is None:
    pytest.skip("vision_msgs is not importable: build it into the venv (README, 'REP-155 and vision_msgs'; "
                "scripts/bootstrap.sh does when ../shared/vendor is present)", allow_module_level=True)

from vision_msgs.msg import Detection2DArray, LabelInfo  # noqa: E402

CK_LABELS = ("anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")


class CkLikePipeline(FakeFacePipeline):
    """A model whose sidecar names 8 classes in its own order (labels come from it, not from FER2013)."""

    labels = CK_LABELS

    def __init__(self) -> None:
        probs = np.linspace(1.0, 2.0, len(CK_LABELS)).astype(np.float32)
        super().__init__(probs / probs.sum())


@pytest.fixture
def node(ros_env):
    n = InProcessFer(ros_env, CkLikePipeline(), {"publish_vision_msgs": True, "smoothing": "none",
                                                  "confidence_threshold": 0.1})
    yield n
    n.close()


def test_label_info_is_latched_from_the_sidecar_and_follows_the_threshold(node):
    from rclpy.parameter import Parameter

    infos = node.latched(LabelInfo, "/fer_node/label_info")
    node.wait(lambda: node.snapshot(infos), 10, "latched label_info for a late subscriber")
    info = node.snapshot(infos)[-1]
    assert [(c.class_id, c.class_name) for c in info.class_map] == list(enumerate(CK_LABELS))
    assert info.threshold == pytest.approx(0.1)
    node.fer.set_parameters([Parameter("confidence_threshold", value=0.3)])
    node.wait(lambda: node.snapshot(infos)[-1].threshold == pytest.approx(0.3), 10, "label_info re-published")


def test_detections_carry_the_box_the_face_id_and_one_hypothesis_per_class(node):
    detections = node.collect(Detection2DArray, "/fer_node/detections")
    node.wait_subscribed()
    node.wait(lambda: node.topic_publishers("/fer_node/detections") > 0, 10, "detections publisher")
    stamps = []
    for i in range(2):
        stamp = node.publish(fake_frame(2), frame_id="cam_optical_frame")
        node.wait(lambda: with_stamp(node.snapshot(detections), stamp), 10, "a Detection2DArray")
        stamps.append(stamp)
    arrays = [with_stamp(node.snapshot(detections), s)[0] for s in stamps]
    assert arrays[0].header.frame_id == "cam_optical_frame"
    boxes = {fake_box(k) for k in range(2)}
    ids = []
    for arr in arrays:
        assert len(arr.detections) == 2
        for det in arr.detections:
            assert det.header.stamp == arr.header.stamp
            w, h = det.bbox.size_x, det.bbox.size_y
            box = (int(det.bbox.center.position.x - w / 2), int(det.bbox.center.position.y - h / 2), int(w), int(h))
            assert box in boxes
            assert [r.hypothesis.class_id for r in det.results] == [str(i) for i in range(len(CK_LABELS))]
            np.testing.assert_allclose([r.hypothesis.score for r in det.results], node.pipeline.probabilities,
                                       atol=1e-6)
        ids.append(sorted(det.id for det in arr.detections))
    assert ids[0] == ids[1] and len(set(ids[0])) == 2 and all(ids[0])  # stable per track


def test_without_vision_msgs_the_node_says_so_once_and_runs_on(ros_env, monkeypatch):
    from fer_msgs.msg import FaceEmotionArray
    from rclpy.impl.rcutils_logger import RcutilsLogger

    import fer_perception.ros.vision_output as vision_output

    def missing():
        raise ImportError("No module named 'vision_msgs'")

    warnings: list[str] = []
    original = RcutilsLogger.warning
    monkeypatch.setattr(vision_output, "vision_messages", missing)
    monkeypatch.setattr(RcutilsLogger, "warning",
                        lambda self, m, *a, **k: (warnings.append(str(m)), original(self, m, *a, **k))[1])
    node = InProcessFer(ros_env, FakeFacePipeline(FEAR), {"publish_vision_msgs": True})
    try:
        faces = node.collect(FaceEmotionArray, "/fer_node/faces")
        node.wait_subscribed()
        stamp = node.publish(fake_frame(1))
        node.wait(lambda: with_stamp(node.snapshot(faces), stamp), 10, "faces without vision_msgs")
        assert len([w for w in warnings if "publish_vision_msgs needs the vision_msgs messages" in w]) == 1
        assert node.topic_publishers("/fer_node/detections") == 0
    finally:
        node.close()
