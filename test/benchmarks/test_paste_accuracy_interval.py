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


def test_runs_split_by_set_and_size_merge_into_one_table(tmp_path, capsys):
    import json

    def row(size, diff):
        return {"size": size, "placed": 10, "found": 9, "e2e": 0.7, "direct": 0.7 - diff, "diff": diff,
                "diff_ci": 0.005, "agreement": 0.9, "direct_all": 0.7}

    args = {"max_angle": 15.0, "interpolation": "lanczos", "limit": 0, "sizes": [], "seed": 0}
    runs = [("a.json", {"ck": [row(144, 0.0)]}, 4), ("b.json", {"ck": [row(96, -0.03)]}, 4),
            ("c.json", {"pt": [row(96, 0.0)]}, 1)]
    for name, results, repeats in runs:
        (tmp_path / name).write_text(json.dumps({"results": results, "options": {"model": "full"},
                                                 "args": {**args, "repeats": repeats}}))
    assert pa.main(["--from-json", *(str(tmp_path / n) for n, _, _ in runs), "--no-doc", "--command", "x"]) == 0
    text = capsys.readouterr().out
    ck_rows = [line for line in text.splitlines() if line.startswith("| ck |")]
    assert [line.split("|")[2].strip() for line in ck_rows] == ["96", "144"]  # merged, by size
    assert "4 (ck), 1 (pt) placement(s) each" in text
    assert "* ck: worst lower bound -3.5 pts at 96 px -> NOT met" in text
    assert "* pt: worst lower bound -0.5 pts at 96 px -> met" in text  # within 1 point
