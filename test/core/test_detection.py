"""Face detection: BlazeFace decoding pieces, real photos, backends, Haar fallback, errors."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fer_perception import blazeface as bf
from fer_perception.detection import (
    DETECTOR_NAMES,
    KEYPOINT_NAMES,
    Detection,
    FaceDetector,
    create_detector,
)
from fer_perception.errors import DetectorError
from fer_perception.inference import available_backends


def _inside(point, box, slack=0.0) -> bool:
    x, y, w, h = box
    return x - slack <= point[0] <= x + w + slack and y - slack <= point[1] <= y + h + slack


# ---------------------------------------------------------------------------- decoding pieces


def test_anchors_match_mediapipe_layout():
    a = bf.ANCHORS
    assert a.shape == (896, 2)
    # Stride 8: 16x16 cells x 2 anchors; then stride 16: 8x8 cells x 6 anchors (3 layers x 2).
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1], a[0])
    assert np.allclose(a[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(a[511], [15.5 / 16, 15.5 / 16])
    assert np.allclose(a[512:518], [0.5 / 8, 0.5 / 8])
    assert np.allclose(a[518], [1.5 / 8, 0.5 / 8])
    assert np.allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_decode_boxes_keypoints_and_threshold():
    reg = np.zeros((896, 16), np.float32)
    cls = np.full((896, 1), -5.0, np.float32)
    i = 600  # a stride-16 anchor
    cls[i] = 2.0  # sigmoid = 0.881
    reg[i, :4] = [12.8, -6.4, 25.6, 38.4]  # dx, dy, w, h in 128-px units
    reg[i, 4:6] = [-6.4, 0.0]
    boxes, scores, kps = bf.decode(reg, cls, 0.5)
    assert scores.shape == (1,) and scores[0] == pytest.approx(1 / (1 + math.exp(-2.0)), rel=1e-6)
    cx, cy = bf.ANCHORS[i] + [0.1, -0.05]
    assert boxes[0] == pytest.approx([cx - 0.1, cy - 0.15, cx + 0.1, cy + 0.15], abs=1e-6)
    assert kps[0, 0] == pytest.approx(bf.ANCHORS[i] + [-0.05, 0.0], abs=1e-6)
    assert kps[0, 1] == pytest.approx(bf.ANCHORS[i], abs=1e-6)
    assert bf.decode(reg, cls, 0.9)[1].size == 0  # 0.881 < 0.9
    cls[i] = 1e6  # clipped to 100 -> still a finite score of 1
    assert bf.decode(reg, cls, 0.5)[1][0] == pytest.approx(1.0)


def test_weighted_nms_averages_overlapping_and_keeps_separate():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    kps[1] += 5.0
    b, s, k = bf.weighted_nms(boxes, scores, kps, 0.3)
    assert len(b) == 2
    assert s.tolist() == pytest.approx([0.9, 0.7])
    assert b[0] == pytest.approx([0.4, 0.4, 10.4, 10.4], abs=1e-5)  # (0.9*0 + 0.6*1) / 1.5
    assert k[0, 0, 0] == pytest.approx(2.0, abs=1e-5)
    assert b[1] == pytest.approx([50, 50, 60, 60])


def test_tile_regions_cover_frame():
    regions = bf.tile_regions(640, 360, 3, 2)
    assert len(regions) == 6
    covered = np.zeros((360, 640), bool)
    for x, y, w, h in regions:
        assert x >= 0 and y >= 0 and x + w <= 640 and y + h <= 360
        covered[y : y + h, x : x + w] = True
    assert covered.all()


# ---------------------------------------------------------------------------- real photos


def _check_faces(dets, count, image):
    assert len(dets) == count, dets
    h, w = image.shape[:2]
    for d in dets:
        x, y, bw, bh = d.box
        assert 0 <= x and 0 <= y and x + bw <= w + 1e-3 and y + bh <= h + 1e-3
        assert 0.5 <= d.score <= 1.0
        assert d.keypoints.shape == (6, 2)
        assert _inside(d.right_eye, d.box) and _inside(d.left_eye, d.box)
        # Subject's right eye is on the image left in these unmirrored photos.
        assert d.right_eye[0] < d.left_eye[0]
        # Eyes in the upper half of the box, mouth below them.
        assert d.right_eye[1] < y + 0.6 * bh and d.keypoints[3][1] > d.right_eye[1]


def test_blazeface_astronaut_one_face(blazeface, astronaut_bgr):
    dets = blazeface.detect(astronaut_bgr)
    _check_faces(dets, 1, astronaut_bgr)
    # Her face is at about x 175..275, y 75..180 in the 512x512 image.
    x, y, w, h = dets[0].box
    assert 160 < x + w / 2 < 250 and 100 < y + h / 2 < 160 and 70 < w < 130


def test_blazeface_obama_one_face(blazeface, obama_bgr):
    _check_faces(blazeface.detect(obama_bgr), 1, obama_bgr)


def test_blazeface_two_people(blazeface, two_people_bgr):
    dets = blazeface.detect(two_people_bgr)
    _check_faces(dets, 2, two_people_bgr)
    centres = sorted(d.box[0] + d.box[2] / 2 for d in dets)
    assert centres[1] - centres[0] > 300  # two distinct people, not one face twice


def test_blazeface_accepts_grey_and_bgra_and_no_face(blazeface, astronaut_bgr):
    grey = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    assert len(blazeface.detect(grey)) == 1
    assert len(blazeface.detect(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA))) == 1
    assert blazeface.detect(np.zeros((480, 640, 3), np.uint8)) == []
    # A different frame size after the first (geometry cache) still works.
    small = cv2.resize(astronaut_bgr, (300, 200))
    assert len(blazeface.detect(small)) == 1


def test_blazeface_rejects_bad_images(blazeface):
    with pytest.raises(DetectorError):
        blazeface.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(DetectorError):
        blazeface.detect(np.zeros((64, 64, 5), np.uint8))


def test_keypoint_names_and_accessors():
    kps = np.arange(12, dtype=np.float32).reshape(6, 2)
    d = Detection(box=(0, 0, 10, 10), score=0.9, keypoints=kps)
    assert KEYPOINT_NAMES[:2] == ("right_eye", "left_eye")
    assert d.right_eye.tolist() == [0, 1] and d.left_eye.tolist() == [2, 3]
    assert Detection(box=(0, 0, 1, 1), score=1.0).right_eye is None


@pytest.mark.skipif(available_backends()["tflite"] is not None, reason="LiteRT not installed")
def test_blazeface_onnx_and_tflite_agree(blazeface, two_people_bgr):
    lite = create_detector("blazeface", backend="tflite")
    a, b = blazeface.detect(two_people_bgr), lite.detect(two_people_bgr)
    assert len(a) == len(b) == 2
    for da, db in zip(a, b):
        assert np.allclose(da.box, db.box, atol=0.5)
        assert np.allclose(da.keypoints, db.keypoints, atol=0.5)
        assert da.score == pytest.approx(db.score, abs=1e-3)


def test_blazeface_tiles_find_small_faces(blazeface, astronaut_bgr):
    # Astronaut's face shrunk to ~60 px in a wide 1280x360 frame: the single 128-px view needs
    # ~12% of the long side (~150 px); a 4x1 tiling (tiles ~394 px wide) needs ~50 px.
    frame = np.zeros((360, 1280, 3), np.uint8)
    small = cv2.resize(astronaut_bgr, (330, 330), interpolation=cv2.INTER_AREA)
    frame[15:345, 800:1130] = small
    tiled = create_detector("blazeface", backend="onnxruntime", tiles=(4, 1))
    found = tiled.detect(frame)
    assert len(found) == 1, found
    x, y, w, h = found[0].box
    assert 800 + 110 < x + w / 2 < 800 + 180 and 15 + 50 < y + h / 2 < 15 + 120
    assert blazeface.detect(frame) == []  # the documented limit of the single view


def test_blazeface_tiles_on_clip_frame(hamilton_clip):
    cap = cv2.VideoCapture(str(hamilton_clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = cap.read()
    cap.release()
    assert ok
    plain = create_detector("blazeface", backend="onnxruntime").detect(frame)
    tiled = create_detector("blazeface", backend="onnxruntime", tiles=(2, 1)).detect(frame)
    assert len(tiled) >= len(plain) >= 1


def test_haar_finds_faces_without_keypoints(astronaut_bgr):
    haar = create_detector("haar")
    assert isinstance(haar, FaceDetector)
    dets = haar.detect(astronaut_bgr)
    assert len(dets) == 1 and dets[0].keypoints is None and dets[0].right_eye is None
    x, y, w, h = dets[0].box
    assert 160 < x + w / 2 < 250 and 80 < y + h / 2 < 160


def test_haar_two_people(two_people_bgr):
    assert len(create_detector("haar").detect(two_people_bgr)) == 2


def test_unknown_detector_and_bad_options():
    with pytest.raises(DetectorError, match="valid names: blazeface, haar"):
        create_detector("yolo")
    with pytest.raises(DetectorError):
        create_detector("blazeface", no_such_option=1)
    with pytest.raises(DetectorError):
        create_detector("blazeface", score_threshold=1.5)
    assert DETECTOR_NAMES == ("blazeface", "haar")


@pytest.mark.skipif(available_backends()["tflite"] is not None, reason="LiteRT not installed")
def test_tiles_on_tflite_match_onnx(hamilton_clip):
    """The TFLite BlazeFace graph fixes batch 1: tiles then run one by one, with the same result."""
    cap = cv2.VideoCapture(str(hamilton_clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 270)
    ok, frame = cap.read()
    cap.release()
    assert ok
    a = create_detector("blazeface", backend="onnxruntime", tiles=(2, 1)).detect(frame)
    lite = create_detector("blazeface", backend="tflite", tiles=(2, 1))
    b = lite.detect(frame)
    assert len(a) == len(b) >= 2
    for da, db in zip(a, b):
        assert np.allclose(da.box, db.box, atol=0.5)
    assert lite.describe()["per_sample"] is True
