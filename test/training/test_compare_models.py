"""tools/compare_models.py: the paired accuracy difference of two models on the same faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import load_tool


def _compare_models():
    return load_tool("compare_models")


def test_paired_difference_is_new_minus_old_with_an_interval_around_it():
    tool = _compare_models()
    old = np.array([1, 1, 0, 0] * 50, bool)
    new = np.array([1, 1, 1, 0] * 50, bool)      # right on 50 more faces of 200, wrong on none it had
    r = tool.paired_difference(old, new)
    assert (r["images"], r["old_accuracy"], r["new_accuracy"]) == (200, 0.5, 0.75)
    assert r["difference"] == pytest.approx(0.25)
    lo, hi = r["difference_ci95"]
    assert 0.15 < lo < 0.25 < hi < 0.35
    same = tool.paired_difference(old, old)
    assert same["difference"] == 0 and same["difference_ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="equally long"):
        tool.paired_difference(old, new[:10])


def test_a_model_against_itself_differs_by_nothing_on_every_set(random_keras_model, tiny_npz, tiny_ck_npz,
                                                                 tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert _compare_models().main([str(random_keras_model), str(random_keras_model), "--fer2013", str(tiny_npz),
                                   "--ckplus", str(tiny_ck_npz), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["public_test"]["images"] == 140 and result["ckplus"]["images"] == 300   # contempt left out
    for name in ("public_test", "ckplus"):
        assert result[name]["difference"] == 0.0 and result[name]["old_recall"] == result[name]["new_recall"]
    assert "new - old +0.00 pt" in capsys.readouterr().out


def test_a_missing_model_is_a_clear_error(tiny_npz, tmp_path, capsys):
    assert _compare_models().main([str(tmp_path / "nope.onnx"), str(tmp_path / "nope.onnx"),
                                   "--fer2013", str(tiny_npz)]) == 2
    assert "nope.onnx not found" in capsys.readouterr().err
