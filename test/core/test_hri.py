"""fer_perception.hri: the REP-155 expression table, face ids, face images, re-alignment and grouping."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from fer_perception import hri
from fer_perception.labels import EMOTION_LABELS
from fer_perception.preprocessing import align_face


def test_every_fer2013_class_maps_to_a_rep155_constant():
    got = {label: hri.rep155_expression(label) for label in EMOTION_LABELS}
    assert got == {"angry": "angry", "disgust": "disgusted", "fear": "scared", "happy": "happy",
                   "sad": "sad", "surprise": "surprised", "neutral": "neutral"}
    assert set(got.values()) <= set(hri.REP155_EXPRESSIONS)


def test_other_names_follow_the_stated_rule():
    assert hri.rep155_expression("anger") == "angry"  # CK+ names are made canonical first
    assert hri.rep155_expression("Sadness") == "sad"
    assert hri.rep155_expression("bored") == "bored"  # already a REP constant
    assert hri.rep155_expression("contempt") == "contempt"  # no REP constant: the model's own name
    assert hri.rep155_expression("unknown") == hri.NO_EXPRESSION == ""


def test_face_ids_are_stable_per_track_unique_and_topic_safe():
    ids = hri.FaceIds()
    a, b = ids.id_for(1), ids.id_for(2)
    assert ids.id_for(1) == a and a != b
    assert ids.forget([1, 99]) == [a]
    assert ids.id_for(1) != a  # a track id seen again after it ended is a new face
    for face_id in (a, b):
        assert re.fullmatch(r"f[a-z0-9]{5}_[0-9]+", face_id)
    # another start of the node: another session, so no id is given again
    sessions = {hri.FaceIds().session for _ in range(50)}
    assert len(sessions) >= 49


def test_normalized_roi_and_letterbox():
    assert hri.normalized_roi((64, 48, 128, 96), 640, 480) == pytest.approx((0.1, 0.1, 0.3, 0.3))
    assert hri.normalized_roi((-10, 0, 20, 500), 100, 100) == (0.0, 0.0, 0.1, 1.0)
    with pytest.raises(ValueError):
        hri.normalized_roi((0, 0, 1, 1), 0, 10)
    frame = np.full((200, 300, 3), 200, np.uint8)
    crop = hri.letterboxed_crop(frame, (10, 20, 100, 50), 128, 96)
    assert crop.shape == (96, 128, 3)
    x, y, w, h = hri.content_rectangle(crop)
    assert (w, h) == (128, 64) and x == 0 and y == 16  # scaled to fit, centred on black
    fit = hri.Letterbox.fit(100, 50, 128, 96)
    assert (fit.x, fit.y, fit.w, fit.h) == (x, y, w, h)


def _smooth_face_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (480, 640)).astype(np.float32)
    grey = cv2.GaussianBlur(noise, (0, 0), 6)
    grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("box, eyes", [
    ((200, 120, 180, 200), ((255, 190), (330, 186))),   # upright, taller than wide (letterbox bars)
    ((300, 200, 120, 120), ((330, 240), (385, 255))),   # tilted head
])
def test_realignment_from_a_letterboxed_crop_matches_the_direct_alignment(box, eyes):
    frame = _smooth_face_frame()
    height, width = frame.shape[:2]
    direct = align_face(frame, box, np.array(eyes, float))
    cropped = hri.letterboxed_crop(frame, box, 128, 128)
    roi = hri.normalized_roi(box, width, height)
    eyes_norm = [(x / width, y / height) for x, y in eyes]
    aspect = box[2] / box[3]
    for box_aspect in (aspect, None):  # from the landmarks' image size, or from the letterbox itself
        again = hri.realign_rep155(cropped, roi, eyes_norm, box_aspect)
        assert again.shape == (48, 48) and again.dtype == np.uint8
        diff = np.abs(again.astype(int) - direct.astype(int))
        # Inside the box the two agree to a grey level; the crop holds nothing beyond the box, so
        # the template's margin outside it is border-replicated (as at a frame edge).
        assert diff[8:40, 8:40].mean() < 2.0, diff[8:40, 8:40].mean()
    naive = cv2.resize(cv2.cvtColor(cropped, cv2.COLOR_BGR2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(naive.astype(int) - direct.astype(int))[8:40, 8:40].mean() > 10  # the skew re-alignment removes


def test_realignment_without_eyes_and_bad_input():
    frame = _smooth_face_frame(1)
    cropped = hri.letterboxed_crop(frame, (100, 100, 150, 150), 128, 128)
    out = hri.realign_rep155(cropped, (0.1, 0.1, 0.3, 0.4), None)
    assert out.shape == (48, 48)
    with pytest.raises(ValueError, match="roi"):
        hri.realign_rep155(cropped, (0.3, 0.1, 0.3, 0.4))
    with pytest.raises(ValueError, match="uint8"):
        hri.realign_rep155(cropped.astype(np.float32), (0.1, 0.1, 0.3, 0.4))


def test_eyes_from_landmarks_prefers_pupils_then_eye_corners():
    points = [(0.0, 0.0, 0.0)] * 70
    assert hri.eyes_from_landmarks(points) is None
    corners = list(points)
    corners[36], corners[39] = (0.30, 0.40, 1.0), (0.36, 0.40, 1.0)
    corners[42], corners[45] = (0.44, 0.41, 1.0), (0.50, 0.41, 1.0)
    right, left = hri.eyes_from_landmarks(corners)
    assert right == pytest.approx((0.33, 0.40)) and left == pytest.approx((0.47, 0.41))
    pupils = list(corners)
    pupils[68], pupils[69] = (0.32, 0.39, 0.9), (0.48, 0.39, 0.9)
    assert hri.eyes_from_landmarks(pupils) == ((0.32, 0.39), (0.48, 0.39))


def _feed(grouper, stamp, ids, now, parts=("roi", "cropped"), tracked=True):
    for face_id in ids:
        for part in parts:
            grouper.add_part(stamp, face_id, part, f"{part}:{face_id}", now)
    if tracked:
        grouper.add_tracked(stamp, ids, now)


def test_a_frame_goes_as_soon_as_all_its_tracked_faces_are_complete():
    g = hri.StampGrouper(max_wait=0.05)
    g.add_part(100, "a", "roi", 1, now=0.0)
    g.add_part(100, "b", "roi", 1, now=0.0)
    g.add_part(100, "a", "cropped", 1, now=0.001)
    g.add_tracked(100, ["a", "b"], now=0.002)
    assert g.pop_ready(0.003) == []  # b's image is still missing
    g.add_part(100, "b", "cropped", 1, now=0.004)
    [frame] = g.pop_ready(0.004)
    assert frame.stamp == 100 and set(frame.ready_faces()) == {"a", "b"} and not frame.expired


def test_an_incomplete_frame_goes_at_the_deadline_with_its_complete_faces():
    g = hri.StampGrouper(max_wait=0.05)
    _feed(g, 100, ["a"], 0.0)
    g.add_tracked(100, ["a", "lost"], 0.0)  # a face kept in tracked without images this frame
    assert g.pop_ready(0.049) == []
    assert g.next_deadline() == pytest.approx(0.05)
    [frame] = g.pop_ready(0.05)
    assert frame.expired and set(frame.ready_faces()) == {"a"}


def test_landmarks_are_awaited_for_faces_that_send_them_and_late_messages_are_counted():
    g = hri.StampGrouper(max_wait=1.0)
    _feed(g, 1, ["a"], 0.0, parts=("roi", "cropped", "landmarks"))
    assert len(g.pop_ready(0.0)) == 1
    _feed(g, 2, ["a"], 0.1)  # no landmarks yet for a face that had them
    assert g.pop_ready(0.1) == []
    g.add_part(2, "a", "landmarks", 1, 0.11)
    assert [f.stamp for f in g.pop_ready(0.11)] == [2]
    g.add_part(1, "a", "roi", 1, 0.2)  # for a frame already emitted
    assert g.late == 1 and g.pending() == 0


def test_a_complete_frame_releases_older_ones_and_pending_frames_are_bounded():
    g = hri.StampGrouper(max_wait=10.0, max_pending=3)
    _feed(g, 1, ["a"], 0.0, tracked=False)
    _feed(g, 2, ["a"], 0.0)
    assert [(f.stamp, f.expired) for f in g.pop_ready(0.0)] == [(1, True), (2, False)]
    for s in (3, 4, 5, 6):
        _feed(g, s, ["a"], 0.0, tracked=False)
    assert [f.stamp for f in g.pop_ready(0.0)] == [3]  # the oldest, to keep at most 3 waiting
    assert g.pending() == 3
