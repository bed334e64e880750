"""Drawing faces on the annotated image."""

from __future__ import annotations

import numpy as np
import pytest

from fer_perception.annotate import FaceAnnotation, draw_faces, label_colour
from fer_perception.labels import EMOTION_LABELS


def test_draw_faces_copies_and_draws_inside_the_image():
    img = np.zeros((240, 320, 3), np.uint8)
    probs = np.array([0.05, 0.05, 0.05, 0.6, 0.05, 0.1, 0.1])
    out = draw_faces(img, [FaceAnnotation((100, 60, 80, 80), "happy", 0.6, 7, probs),
                           FaceAnnotation((0, 0, 30, 30), "unknown", 0.2, 8, None),
                           FaceAnnotation((300, 200, 40, 60), "sad", 0.9, 9, probs)], EMOTION_LABELS)  # partly outside
    assert img.max() == 0  # input untouched (it may be a read-only view of a message)
    assert out.shape == img.shape and out[60, 100:180].any() and out[:, :, :].sum() > 0
    ro = img.copy()
    ro.flags.writeable = False
    draw_faces(ro, [], EMOTION_LABELS)  # read-only input is fine
    with pytest.raises(ValueError):
        draw_faces(np.zeros((10, 10), np.uint8), [], EMOTION_LABELS)


def test_bars_follow_the_models_own_labels_and_colours_follow_their_meaning():
    """A 6-class CK+ model's names label the bars; 'anger' is drawn in angry's colour."""
    ck_labels = ("anger", "disgust", "fear", "happy", "sadness", "surprise")
    probs = np.array([0.7, 0.1, 0.05, 0.05, 0.05, 0.05])
    img = np.zeros((240, 320, 3), np.uint8)
    out = draw_faces(img, [FaceAnnotation((100, 60, 80, 80), "anger", 0.7, 1, probs)], ck_labels)
    assert out.sum() > 0
    assert label_colour("anger") == label_colour("angry") and label_colour("sadness") == label_colour("sad")
    assert label_colour("contempt") != label_colour("no-such-class")
    with_wrong_count = draw_faces(img, [FaceAnnotation((100, 60, 80, 80), "anger", 0.7, 1, probs)], EMOTION_LABELS)
    assert with_wrong_count.sum() < out.sum()  # 6 probabilities vs 7 names: no bars rather than wrong names
