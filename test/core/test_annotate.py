"""Drawing faces on the annotated image."""

from __future__ import annotations

import numpy as np
import pytest

from fer_perception.annotate import FaceAnnotation, draw_faces


def test_draw_faces_copies_and_draws_inside_the_image():
    img = np.zeros((240, 320, 3), np.uint8)
    probs = np.array([0.05, 0.05, 0.05, 0.6, 0.05, 0.1, 0.1])
    out = draw_faces(img, [FaceAnnotation((100, 60, 80, 80), "happy", 0.6, 7, probs),
                           FaceAnnotation((0, 0, 30, 30), "unknown", 0.2, 8, None),
                           FaceAnnotation((300, 200, 40, 60), "sad", 0.9, 9, probs)])  # partly outside
    assert img.max() == 0  # input untouched (it may be a read-only view of a message)
    assert out.shape == img.shape and out[60, 100:180].any() and out[:, :, :].sum() > 0
    ro = img.copy()
    ro.flags.writeable = False
    draw_faces(ro, [])  # read-only input is fine
    with pytest.raises(ValueError):
        draw_faces(np.zeros((10, 10), np.uint8), [])
