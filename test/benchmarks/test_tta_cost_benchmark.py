"""benchmarks/tta_cost.py: it times both shipped models on the same batches and its table reports
what it measured (ratio of the medians, the accuracy each export recorded)."""

from __future__ import annotations

import sys
from pathlib import Path

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


def test_a_baseline_file_gets_its_own_column_and_the_defaults_ratio_to_it(tmp_path):
    import shutil

    import tta_cost

    default = tta_cost.shipped_models()
    source = next(iter(default.values()))
    baseline = Path(shutil.copy(source, tmp_path / "old_default.onnx"))
    shutil.copy(source.with_suffix(".json"), tmp_path / "old_default.json")
    models = tta_cost.shipped_models(baseline)
    assert list(models.values())[2] == baseline
    counts = [tta_cost.views(path) for path in models.values()]
    assert counts[1] == 12 and counts[2] == counts[0] in (2, 4)  # the tta12 file; the copy of the default
    assert [label.split(" (")[1] for label in models] == [f"{n} views)" for n in counts]
    rows = tta_cost.measure(models, [("onnxruntime", "fp32", 1)], runs=3, warmup=1)
    for r in rows:
        assert r["default_vs_baseline"] == pytest.approx(r["default_ms"] / r["baseline_ms"])
    text = tta_cost.markdown(rows, models, "cmd", "quiet")
    assert "default / baseline |" in text and text.count("| onnxruntime | fp32 | 1 |") == len(tta_cost.FACES)

