"""Detection reach: BlazeFace full range, tiling pyramids, one box per face across tiles and scales,
the tracking-guided scan, and the node defaults finding a 40-px face in a 1280x720 frame."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_perception import blazeface as bf
from fer_perception.detection import create_detector
from fer_perception.errors import DetectorError
from fer_perception.inference import available_backends
from fer_perception.params import defaults
from fer_perception.perception import NODE_KEY, detector_options_from_params, parse_tiles

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import face_scenes as fs  # noqa: E402

needs_media = pytest.mark.skipif(not (fs.MEDIA / "obama.jpg").exists(), reason=f"{fs.MEDIA} (../shared/media) is absent")


@pytest.fixture(scope="module")
def obama_source():
    """obama.jpg's face as a paste source (box from BlazeFace short range on the photo)."""
    image = cv2.imread(str(fs.MEDIA / "obama.jpg"))
    det = create_detector("blazeface", backend="onnxruntime").detect(image)[0]
    return fs._patch(image, det.box, "obama")


def _scene(source, width, height, centres, size):
    """A smooth random texture (no faces) with ``source`` pasted at ``centres``, ``size`` px."""
    noise = np.random.default_rng(0).integers(40, 200, (height, width, 3), dtype=np.uint8)
    frame = cv2.GaussianBlur(noise, (0, 0), 8)
    return frame, [fs.paste(frame, source, c, size) for c in centres]


# ------------------------------------------------------------------------------ pieces


def test_full_range_anchors_and_model_files():
    full = bf.MODELS["full"]
    assert full.input_size == 192 and full.anchors.shape == (2304, 2)
    assert np.allclose(full.anchors[0], [0.5 / 48, 0.5 / 48]) and np.allclose(full.anchors[-1], [47.5 / 48, 47.5 / 48])
    assert full.onnx_path.is_file() and full.tflite_path.is_file()


def test_parse_tiles_and_levels():
    assert parse_tiles("") is None
    assert parse_tiles("2x2, 4x3") == [(2, 2), (4, 3)]
    with pytest.raises(DetectorError):
        parse_tiles("2by2")
    assert bf._parse_levels((3, 2)) == ((3, 2),)
    assert bf._parse_levels([(2, 2), (4, 3)]) == ((2, 2), (4, 3))
    with pytest.raises(DetectorError):
        bf._parse_levels([(1, 1)])
    assert len(bf.pyramid_regions(1280, 720, [(2, 2), (4, 3)])) == 16


def test_region_around_stays_inside_the_frame():
    for box in [(0, 0, 40, 40), (1250, 690, 30, 30), (600, 300, 50, 50)]:
        x, y, w, h = bf.region_around(box, 1280, 720, 3.0, 288)
        assert 0 <= x and 0 <= y and x + w <= 1280 and y + h <= 720 and w == h == 288
    assert bf.region_around((0, 0, 400, 400), 640, 480, 3.0, 288)[2:] == (480, 480)


def test_contained_boxes_are_suppressed_but_neighbours_kept():
    boxes = np.array([[100, 100, 200, 200], [100, 150, 200, 210], [205, 100, 300, 200]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    b, s, _ = bf.suppress_contained(boxes, scores, kps)
    assert s.tolist() == pytest.approx([0.9, 0.7])  # the half face (60 % inside) goes, the neighbour stays


def test_scan_groups_cover_every_view_once():
    det = create_detector("blazeface", backend="onnxruntime", model="full", tiles=[(2, 2), (4, 3)], scan_frames=5)
    groups = det.scan_views(1280, 720)
    flat = [r for g in groups for r in g]
    assert len(groups) == 5 and len(flat) == 17 and len(set(flat)) == 17
    assert (0, 0, 1280, 720) in groups[0]
    assert max(len(g) for g in groups) - min(len(g) for g in groups) <= 1
    mixed = create_detector("blazeface", backend="onnxruntime", model="full", whole_frame_model="short",
                            tiles=[(2, 2), (4, 3)], scan_frames=4)
    assert sum(len(g) for g in mixed.scan_views(1280, 720)) == 16  # the whole frame runs on every call


def test_bad_reach_options():
    with pytest.raises(DetectorError):
        create_detector("blazeface", model="huge")
    with pytest.raises(DetectorError):
        create_detector("blazeface", scan_frames=0)
    with pytest.raises(DetectorError):
        create_detector("blazeface", whole_frame_model="medium", model="full")
    with pytest.raises(DetectorError):
        create_detector("blazeface", tile_overlap=1.0, tiles=(2, 2))
    with pytest.raises(DetectorError):
        create_detector("blazeface", tile_score_threshold=1.2, tiles=(2, 2))
    with pytest.raises(DetectorError):
        create_detector("blazeface", model="full", scan_frames=4, track_model="tiny")


def test_track_views_run_on_the_track_model():
    """Re-detection views go to track_model's network (sized for it), the scan to model's."""
    det = create_detector("blazeface", model="full", whole_frame_model="short", tiles=[(2, 2)], scan_frames=4,
                          track_model="short")
    assert det._track_net is det._whole_net and det.describe()["track_model"] == "short"
    det._geometry_key = (720, 1280)
    det._scan, det._overlaps, det._memory = det.scan_views(1280, 720), {}, [((600.0, 300.0, 40.0, 40.0), 0)]
    groups = {net.spec.name: views for net, views in det._views_for_call(1280, 720)}
    def side(view):  # the network input the view was letterboxed into
        return round(view.scale * max(view.w, view.h))

    assert [side(v) for v in groups["short"]] == [128, 128]  # the whole frame + one re-detection view
    assert groups["short"][1].w == int(1.5 * 128) and groups["short"][1].inner
    assert groups["full"] and all(side(v) == 192 for v in groups["full"])
    same = create_detector("blazeface", model="full", tiles=[(2, 2)], scan_frames=4)
    assert same._track_net is same._net
    stateless = create_detector("blazeface", model="full", tiles=[(2, 2)], track_model="short")  # scan_frames 1
    assert stateless._track_net is stateless._net  # no re-detection views: no third network loaded


def test_tile_threshold_parameter_reaches_the_detector():
    """detector_tile_score_threshold is passed through; the detector never lets tiles accept less
    than the whole frame does."""
    options = detector_options_from_params(defaults(NODE_KEY))
    assert options["tile_score_threshold"] == defaults(NODE_KEY)["detector_tile_score_threshold"]
    det = create_detector("blazeface", **{**options, "tile_score_threshold": 0.55})
    assert det.tile_score_threshold == 0.55
    stricter_frame = create_detector("blazeface", **{**options, "score_threshold": 0.7, "tile_score_threshold": 0.55})
    assert stricter_frame.tile_score_threshold == 0.7


# ------------------------------------------------------------------------------ real faces


@needs_media
@pytest.mark.skipif(available_backends()["tflite"] is not None, reason="LiteRT not installed")
def test_full_range_onnx_matches_the_sparse_tflite(obama_source):
    frame, truth = _scene(obama_source, 640, 480, [(200, 200), (470, 260)], 70)
    a = create_detector("blazeface", backend="onnxruntime", model="full").detect(frame)
    b = create_detector("blazeface", backend="tflite", model="full").detect(frame)
    assert len(a) == len(b) == 2
    for da, db in zip(a, b):
        assert np.allclose(da.box, db.box, atol=0.5) and np.allclose(da.keypoints, db.keypoints, atol=0.5)
        assert da.model == db.model == "full"


@needs_media
@pytest.mark.parametrize("options", [
    {"model": "short", "tiles": (2, 2)},
    {"model": "full", "tiles": [(2, 2), (4, 3)]},
    {"model": "full", "whole_frame_model": "short", "tiles": [(2, 2), (4, 3)]},
], ids=["short-2x2", "full-pyramid", "mixed-pyramid"])
def test_tiles_and_scales_give_one_box_per_face(obama_source, options):
    """Faces on the tile seams (the frame's centre lines, where every level overlaps) and one big
    face seen by the whole frame and by tiles: each comes out once."""
    det = create_detector("blazeface", backend="onnxruntime", **options)
    frame, truth = _scene(obama_source, 1280, 720, [(640, 360), (640, 120), (320, 360)], 110)
    big_frame, big_truth = _scene(obama_source, 1280, 720, [(900, 360)], 330)
    for image, boxes in ((frame, truth), (big_frame, big_truth)):
        found = det.detect(image)
        hit, false = fs.match(boxes, [d.box for d in found])
        assert all(h is not None for h in hit), (found, boxes)
        assert false == 0, found  # no second box for any face


@needs_media
def test_node_defaults_find_a_40px_face_in_720p_within_the_scan(obama_source):
    """A 40-px face appearing anywhere in a 1280x720 frame is found by the node's default detector
    within detector_scan_frames calls (0.5 s at 30 fps), and then on every following call."""
    options = detector_options_from_params(defaults(NODE_KEY))
    frames_allowed = int(options["scan_frames"])
    det = create_detector("blazeface", backend="onnxruntime", threads=1, **options)
    rng = np.random.default_rng(3)
    for centre in [(640, 360), (100, 90), (1180, 640), (float(rng.uniform(60, 1220)), float(rng.uniform(60, 660)))]:
        frame, truth = _scene(obama_source, 1280, 720, [centre], 40)
        det.reset()
        first = None
        for call in range(1, frames_allowed + 1):
            hit, _ = fs.match(truth, [d.box for d in det.detect(frame)])
            if hit[0] is not None:
                first = call
                break
        assert first is not None, f"40-px face at {centre} not found within {frames_allowed} frames"
        for _ in range(3):  # the re-detection view keeps it
            assert fs.match(truth, [d.box for d in det.detect(frame)])[0][0] is not None
