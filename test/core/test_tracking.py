"""FaceTracker and select_faces on synthetic box sequences (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_perception.tracking import FaceTracker, iou, iou_matrix, select_faces


def test_iou_basics():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 0, 10), (0, 0, 10, 10)) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(*[st.integers(0, 200)] * 2, *[st.integers(0, 80)] * 2), min_size=0, max_size=5),
    st.lists(st.tuples(*[st.integers(0, 200)] * 2, *[st.integers(0, 80)] * 2), min_size=0, max_size=5),
)
def test_iou_matrix_matches_scalar(a, b):
    m = iou_matrix(a, b)
    assert m.shape == (len(a), len(b))
    for i, ba in enumerate(a):
        for j, bb in enumerate(b):
            assert m[i, j] == pytest.approx(iou(ba, bb), abs=1e-9)
            assert 0.0 <= m[i, j] <= 1.0


def test_ids_stable_while_moving_and_through_a_missed_frame():
    tr = FaceTracker(iou_threshold=0.3, max_missed=2)
    ids = []
    for k in range(10):
        boxes = [] if k == 5 else [(100 + 4 * k, 80, 60, 60)]
        ids.append(tr.update(boxes).ids)
    assert ids[5] == []
    seen = {i for frame in ids for i in frame}
    assert seen == {1}, ids


def test_track_retired_after_max_missed_and_new_face_gets_new_id():
    tr = FaceTracker(iou_threshold=0.3, max_missed=1)
    first = tr.update([(10, 10, 50, 50)]).ids[0]
    tr.update([])
    u = tr.update([])  # second miss > max_missed=1: retired
    assert u.removed_ids == [first]
    again = tr.update([(10, 10, 50, 50)])
    assert again.ids[0] != first and again.new_ids == again.ids


def test_new_faces_get_new_unique_ids():
    tr = FaceTracker(iou_threshold=0.3, max_missed=5)
    a = tr.update([(0, 0, 40, 40)]).ids
    b = tr.update([(0, 0, 40, 40), (200, 0, 40, 40)]).ids
    c = tr.update([(0, 0, 40, 40), (200, 0, 40, 40), (100, 150, 40, 40)]).ids
    assert b[0] == a[0] and c[:2] == b
    assert len(set(c)) == 3


def test_two_crossing_faces_keep_their_ids():
    # Face A moves right, face B moves left on the same row, overlapping in the middle frames.
    tr = FaceTracker(iou_threshold=0.2, max_missed=3)
    size = 60
    history = []
    for k in range(21):
        a = (20 + 12 * k, 100, size, size)
        b = (260 - 12 * k, 104, size, size)
        order = [a, b] if k % 2 == 0 else [b, a]  # detector output order must not matter
        ids = tr.update(order).ids
        history.append(ids if k % 2 == 0 else ids[::-1])
    a_ids = {h[0] for h in history}
    b_ids = {h[1] for h in history}
    assert len(a_ids) == 1 and len(b_ids) == 1 and a_ids != b_ids, history


def test_swap_without_motion_history_is_not_invented():
    # Boxes that jump to completely new places start new tracks instead of stealing ids.
    tr = FaceTracker(iou_threshold=0.3, max_missed=0, centre_gate=0.5)
    first = tr.update([(0, 0, 40, 40)]).ids
    second = tr.update([(300, 300, 40, 40)]).ids
    assert first != second


def test_fast_motion_continues_via_centre_gate():
    tr = FaceTracker(iou_threshold=0.3, max_missed=5, centre_gate=0.6)
    a = tr.update([(100, 100, 50, 50)]).ids
    b = tr.update([(125, 100, 50, 50)]).ids  # IoU 1/3 -> matched; velocity learnt
    c = tr.update([(175, 100, 50, 50)]).ids  # jump of 50 px: IoU with prediction still fine
    assert a == b == c


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(*[st.integers(0, 300)] * 2, *[st.integers(10, 80)] * 2), max_size=4),
                min_size=1, max_size=12))
def test_ids_unique_within_each_frame_and_never_reused(frames):
    tr = FaceTracker(iou_threshold=0.3, max_missed=1)
    retired: set[int] = set()
    for boxes in frames:
        u = tr.update(boxes)
        assert len(u.ids) == len(boxes)
        assert len(set(u.ids)) == len(u.ids)
        assert not (set(u.ids) & retired)
        retired |= set(u.removed_ids)


def test_select_faces_min_size_and_largest_first():
    boxes = [(0, 0, 20, 20), (0, 0, 100, 90), (0, 0, 50, 50), (0, 0, 30, 200)]
    # areas: 400, 9000, 2500, 6000
    assert select_faces(boxes, min_size=25, max_faces=0) == [1, 3, 2]
    assert select_faces(boxes, min_size=25, max_faces=2) == [1, 3]
    assert select_faces(boxes, min_size=31, max_faces=0) == [1, 2]
    assert select_faces(boxes, min_size=0, max_faces=1) == [1]
    assert select_faces([], 10, 3) == []
    assert select_faces(boxes, min_size=1000) == []


def test_iou_matrix_empty_shapes():
    assert iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)
    assert iou_matrix([(0, 0, 1, 1)], []).shape == (1, 0)
    assert np.all(iou_matrix([(0, 0, 0, 0)], [(0, 0, 0, 0)]) == 0)


def test_from_params_reads_the_yaml_defaults():
    from fer_perception.params import defaults

    d = defaults("fer_node")
    tr = FaceTracker.from_params(d)
    assert (tr.iou_threshold, tr.max_missed) == (d["track_iou_threshold"], d["track_max_missed"])
