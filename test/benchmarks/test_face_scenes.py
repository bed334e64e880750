"""The reach benchmark's ground truth (benchmarks/face_scenes.py): matching with "don't care"
regions, and background frames whose erased people are where their faces were."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import face_scenes as fs  # noqa: E402


def test_match_counts_false_positives_outside_ignore_regions_only():
    truth = [(100, 100, 40, 40)]
    found = [(102, 101, 40, 40),     # the face
             (400, 300, 120, 120),  # centred in an erased person: don't care
             (700, 50, 60, 60)]     # on the background: a false positive
    erased = [(380, 280, 200, 200)]
    hit, false = fs.match(truth, found, ignore=erased)
    assert hit == [0] and false == 1
    assert fs.match(truth, found)[1] == 2  # without the region, both count


def test_a_true_face_inside_an_ignore_region_still_counts_as_found():
    truth = [(400, 300, 60, 60)]
    hit, false = fs.match(truth, [(401, 299, 60, 60)], ignore=[(300, 200, 300, 300)])
    assert hit == [0] and false == 0


@pytest.mark.skipif(not (fs.MEDIA / "two_people.jpg").exists(), reason=f"{fs.MEDIA} (../shared/media) is absent")
def test_erased_boxes_cover_the_faces_of_the_original_photo():
    """The erased boxes follow the frame through the resize and crop: every face the short-range
    detector finds (with tiles) in the plain covered photo is centred inside one of them."""
    from fer_perception.detection import create_detector

    size = (1280, 720)
    scenes = fs.load_background_scenes(size, count=12)
    photo = scenes[-2]  # two_people.jpg (the video frames come first, then the two photos)
    assert photo.image.shape == (720, 1280, 3) and len(photo.erased) >= 2
    original = fs._cover(cv2.imread(str(fs.MEDIA / "two_people.jpg")), size)
    faces = create_detector("blazeface", backend="onnxruntime", model="short", tiles=(2, 2)).detect(original)
    assert len(faces) >= 2
    assert all(fs.in_any(d.box, photo.erased) for d in faces), (faces, photo.erased)
