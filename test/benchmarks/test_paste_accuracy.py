"""benchmarks/paste_accuracy.py on a CI-sized sample: CK+48 faces pasted into real frames, through the
whole pipeline at the node's defaults, give the same labels as the faces classified directly; the
same check with a broken alignment (the subject's right and left eye confused: faces upside down)
fails it. (The model shrugs off small framing errors: a template moved 6 px down still agreed on
27 of 30 faces, so the check is a guard against broken alignment, not a framing-precision test;
benchmarks/paste_accuracy.py measures the accuracy itself.)"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import rosharness as rh

sys.path.insert(0, str(rh.REPO / "benchmarks"))

import face_scenes as fs  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (fs.SHARED / "data" / "ckplus48.npz").exists() or not (fs.MEDIA / "hamilton_clip.mp4").exists(),
    reason="../shared/data/ckplus48.npz or ../shared/media is absent")

FACES = 30
# Measured on this sample: 90 % (27 of 30) of the labels agree with the direct ones at 144 px.
MIN_AGREEMENT = 0.75


@pytest.fixture(scope="module")
def setup():
    import paste_accuracy as pa

    pipeline, _ = pa.build_pipeline()
    images, labels = pa.load_set("ckplus48", FACES, seed=1)
    backgrounds = fs.load_backgrounds((640, 480), count=3)
    return pa, pipeline, images, labels, backgrounds


def _run(setup):
    pa, pipeline, images, labels, backgrounds = setup
    (row,) = pa.measure(pipeline, images, labels, [144], 1, 10.0, pa.INTERPOLATIONS["lanczos"], 0, backgrounds)
    return row


def test_pasted_faces_classify_like_the_direct_faces(setup):
    row = _run(setup)
    assert row["found"] >= 0.85 * row["placed"], row
    assert row["agreement"] >= MIN_AGREEMENT, row
    assert row["e2e"] >= row["direct"] - 0.10, row


def test_a_broken_alignment_fails_the_check(setup, monkeypatch):
    from fer_perception import preprocessing as pp

    swapped = {k: (v[1], v[0]) for k, v in pp.TEMPLATES.items()}  # right/left confused: a 180 deg turn
    monkeypatch.setattr(pp, "TEMPLATES", swapped)
    row = _run(setup)
    assert row["agreement"] < MIN_AGREEMENT, row
