"""benchmarks/tta_cost.py: it times both shipped models on the same batches and its table reports
what it measured (ratio of the medians, the accuracy each export recorded)."""

from __future__ import annotations

import sys

import pytest

import rosharness as rh

sys.path.insert(0, str(rh.REPO / "benchmarks"))


def test_times_both_shipped_models_and_renders_the_table():
    import tta_cost

    models = tta_cost.shipped_models()
    assert all(path.is_file() for path in models.values())
    rows = tta_cost.measure(models, [("onnxruntime", "fp32", 1)], runs=3, warmup=1)
    assert [r["faces"] for r in rows] == list(tta_cost.FACES)
    for r in rows:
        assert r["default_ms"] > 0 and r["tta12_ms"] > 0
        assert r["ratio"] == pytest.approx(r["tta12_ms"] / r["default_ms"])
    text = tta_cost.markdown(rows, models, "cmd", "quiet")
    for path in models.values():  # the accuracies the two sidecars record
        assert f"{100 * tta_cost.accuracy(path):.2f}%" in text
    assert text.count("| onnxruntime | fp32 | 1 |") == len(tta_cost.FACES)
