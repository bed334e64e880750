"""benchmarks/paste_accuracy.py's interval: the face, not the placement, is the sampling unit."""

from __future__ import annotations

import sys

import numpy as np

import rosharness as rh

sys.path.insert(0, str(rh.REPO / "benchmarks"))

import paste_accuracy as pa  # noqa: E402


def test_one_placement_per_face_gives_the_plain_standard_error():
    rng = np.random.default_rng(0)
    values = rng.choice([-1.0, 0.0, 1.0], 400, p=[0.1, 0.8, 0.1])
    plain = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(pa.clustered_se(values, np.arange(len(values))) - plain) / plain < 0.01


def test_identical_repeats_do_not_narrow_the_interval():
    """Four copies of each face's result carry no more information than one."""
    rng = np.random.default_rng(1)
    values = rng.choice([-1.0, 0.0, 1.0], 300, p=[0.1, 0.8, 0.1])
    once = pa.clustered_se(values, np.arange(300))
    repeated = pa.clustered_se(np.tile(values, 4), np.tile(np.arange(300), 4))
    assert abs(repeated - once) / once < 0.01
    naive = np.tile(values, 4).std(ddof=1) / np.sqrt(1200)
    assert naive < 0.6 * repeated  # what treating placements as independent would claim


def test_degenerate_samples_give_nan():
    assert np.isnan(pa.clustered_se(np.array([1.0]), np.array([0])))
    assert np.isnan(pa.clustered_se(np.array([1.0, 0.0]), np.array([3, 3])))
