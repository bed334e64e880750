"""REP-155 out (publish_rep155): /humans/faces/tracked and the per-face roi, cropped, aligned and
expression topics, over DDS, with a fake pipeline that controls which faces (tracks) exist."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from inprocess_node import FakeFacePipeline, InProcessFer, fake_box, fake_frame, with_stamp

pytestmark = pytest.mark.ros

if importlib.util.find_spec("hri_msgs") is None:
    pytest.skip("hri_msgs is not importable: build it into the venv (README, 'REP-155 and vision_msgs'; "
                "scripts/bootstrap.sh does when ../shared/vendor is present)", allow_module_level=True)

from hri_msgs.msg import Expression, IdsList, NormalizedRegionOfInterest2D  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from fer_perception import hri  # noqa: E402


def test_our_expression_list_is_the_messages():
    constants = [v for k, v in vars(Expression).items() if k.isupper() and isinstance(v, str)]
    assert sorted(constants) == sorted(hri.REP155_EXPRESSIONS)


def send(node, tracked: list, frame, frame_id: str = "cam"):
    """Publish one frame and wait for its tracked list (the node processes only the newest frame)."""
    stamp = node.publish(frame, frame_id=frame_id)
    node.wait(lambda: with_stamp(node.snapshot(tracked), stamp), 10, f"the tracked list of frame {stamp}")
    return stamp


@pytest.fixture
def node(ros_env):
    n = InProcessFer(ros_env, FakeFacePipeline(), {"publish_rep155": True, "rep155_face_width": 96,
                                                    "rep155_face_height": 64, "track_max_missed": 1,
                                                    "smoothing": "none"})
    yield n
    n.close()


def test_tracked_faces_get_latched_per_id_topics_that_end_with_their_track(node):
    tracked = node.collect(IdsList, "/humans/faces/tracked")
    node.wait_subscribed()
    node.wait(lambda: node.topic_publishers("/humans/faces/tracked") > 0, 10, "tracked publisher")
    stamps = [send(node, tracked, fake_frame(2, shift=2 * i), frame_id=f"cam{i}") for i in range(3)]
    lists = [with_stamp(node.snapshot(tracked), s)[0] for s in stamps]
    ids = list(lists[0].ids)
    assert len(ids) == 2 and all(list(m.ids) == ids for m in lists)  # stable while tracked
    assert all(re.fullmatch(r"f[a-z0-9]{5}_[0-9]+", i) for i in ids)
    assert lists[2].header.frame_id == "cam2"  # the source header

    # A late subscriber reads the last roi and expression (transient local).
    expected = [hri.normalized_roi(fake_box(k, shift=4), 640, 480) for k in range(2)]
    id_of_box: dict[int, str] = {}
    for face_id in ids:
        rois = node.latched(NormalizedRegionOfInterest2D, f"/humans/faces/{face_id}/roi")
        exprs = node.latched(Expression, f"/humans/faces/{face_id}/expression")
        node.wait(lambda: rois and exprs, 10, f"latched roi and expression of {face_id}")
        roi, expr = rois[-1], exprs[-1]
        assert (roi.header.stamp.sec, roi.header.stamp.nanosec) == stamps[-1]
        got = (roi.xmin, roi.ymin, roi.xmax, roi.ymax)
        id_of_box.update({k: face_id for k in range(2) if got == pytest.approx(expected[k], abs=1e-6)})
        assert roi.c == pytest.approx(0.8)
        assert expr.expression == Expression.SCARED  # the model's "fear"
        assert expr.confidence == pytest.approx(0.9, abs=1e-5)
        assert expr.header.frame_id == "cam2"
        assert -1 <= expr.valence < 0 and 0 < expr.arousal <= 1
    assert sorted(id_of_box) == [0, 1] and set(id_of_box.values()) == set(ids)  # each roi is its own box
    stays, leaves = id_of_box[0], id_of_box[1]

    # One face leaves: after track_max_missed frames its topics are gone and tracked drops it.
    for _ in range(3):
        last = send(node, tracked, fake_frame(1, shift=4))
    assert list(with_stamp(node.snapshot(tracked), last)[0].ids) == [stays]
    node.wait(lambda: node.topic_publishers(f"/humans/faces/{leaves}/roi") == 0, 10, "the ended face's roi torn down")
    assert node.topic_publishers(f"/humans/faces/{leaves}/expression") == 0
    assert node.topic_publishers(f"/humans/faces/{stays}/roi") == 1

    # The same place again later is a new face: a new id, never the old one.
    for _ in range(2):
        last = send(node, tracked, fake_frame(2, shift=4))
    again = list(with_stamp(node.snapshot(tracked), last)[0].ids)
    assert stays in again and len(again) == 2 and not set(again) - {stays} & set(ids)


def test_face_images_are_sized_by_the_parameters_and_drawn_only_while_subscribed(node):
    tracked = node.collect(IdsList, "/humans/faces/tracked")
    node.wait_subscribed()
    stamp = node.publish(fake_frame(1))
    node.wait(lambda: with_stamp(node.snapshot(tracked), stamp), 10, "the first tracked list")
    face_id = node.snapshot(tracked)[-1].ids[0]
    # Nobody subscribed to the images yet: nothing was drawn, so a late subscriber gets nothing.
    cropped = node.latched(Image, f"/humans/faces/{face_id}/cropped")
    aligned = node.latched(Image, f"/humans/faces/{face_id}/aligned")
    node.wait(lambda: node.fer.count_subscribers(f"/humans/faces/{face_id}/aligned") > 0, 10, "image subscribers")
    assert node.snapshot(cropped) == [] and node.snapshot(aligned) == []
    frame = fake_frame(1)
    stamp = node.publish(frame)
    node.wait(lambda: with_stamp(node.snapshot(cropped), stamp) and with_stamp(node.snapshot(aligned), stamp),
              10, "cropped and aligned once subscribed")
    c, a = with_stamp(node.snapshot(cropped), stamp)[0], with_stamp(node.snapshot(aligned), stamp)[0]
    assert (c.width, c.height, c.encoding) == (96, 64, "bgr8")
    assert (a.width, a.height, a.encoding) == (96, 64, "mono8")
    crop = np.frombuffer(bytes(c.data), np.uint8).reshape(64, 96, 3)
    np.testing.assert_array_equal(crop, hri.letterboxed_crop(frame, fake_box(0), 96, 64))


def test_without_hri_msgs_the_node_says_so_once_and_runs_on(ros_env, monkeypatch):
    from fer_msgs.msg import FaceEmotionArray
    from rclpy.impl.rcutils_logger import RcutilsLogger

    import fer_perception.ros.hri_output as hri_output

    def missing():
        raise ImportError("No module named 'hri_msgs'")

    warnings: list[str] = []
    original = RcutilsLogger.warning

    def recording(self, message, *args, **kwargs):
        warnings.append(str(message))
        return original(self, message, *args, **kwargs)

    monkeypatch.setattr(hri_output, "hri_messages", missing)
    monkeypatch.setattr(RcutilsLogger, "warning", recording)
    node = InProcessFer(ros_env, FakeFacePipeline(), {"publish_rep155": True})
    try:
        shell = node.fer.shell
        shell.cleanup()  # configured again (lifecycle cleanup -> configure): still said only once
        shell.configure()
        shell.activate()
        faces = node.collect(FaceEmotionArray, "/fer_node/faces")
        node.wait_subscribed()
        node.publish_until(fake_frame(1), lambda stamp: with_stamp(node.snapshot(faces), stamp), 10,
                           "faces without hri_msgs")
        said = [w for w in warnings if "publish_rep155 needs the hri_msgs messages" in w]
        assert len(said) == 1, warnings
        assert "README" in said[0]
        assert node.topic_publishers("/humans/faces/tracked") == 0
    finally:
        node.close()
