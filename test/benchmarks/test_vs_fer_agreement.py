"""benchmarks/vs_fer.py's label agreement: faces are paired one-to-one by IoU >= 0.5 before their
top labels are compared, so a face found by only one side never counts as a disagreement."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np

import rosharness as rh

sys.path.insert(0, str(rh.REPO / "benchmarks"))

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def ours(box, label):
    return SimpleNamespace(box=box, probabilities=np.eye(7)[LABELS.index(label)])


def theirs(box, label):
    return {"box": box, "emotions": {name: float(name == label) for name in LABELS}}


def test_agreement_pairs_faces_by_overlap_before_comparing_labels():
    import vs_fer

    frames_ours = [
        [ours((10, 10, 50, 50), "happy"), ours((200, 10, 50, 50), "sad")],  # second face: fer missed it
        [ours((300, 10, 50, 50), "angry")],  # fer's face is elsewhere: no pair
        [ours((10, 10, 50, 50), "fear")],
    ]
    frames_fer = [
        [theirs((12, 11, 50, 50), "happy")],
        [theirs((10, 10, 50, 50), "angry")],
        [theirs((10, 10, 48, 52), "surprise")],
    ]
    r = vs_fer.agreement(frames_ours, frames_fer, LABELS)
    assert (r["ours_faces"], r["fer_faces"], r["matched"], r["same_label"]) == (4, 3, 2, 1)
    assert r["agreement"] == 0.5


def test_agreement_without_a_single_pair_is_undefined_not_zero():
    import vs_fer

    r = vs_fer.agreement([[ours((0, 0, 10, 10), "happy")]], [[]], LABELS)
    assert r["matched"] == 0 and np.isnan(r["agreement"])
