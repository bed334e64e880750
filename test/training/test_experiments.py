"""fer-experiments: plans subject-independent cells, runs one, skips it next time, writes the report."""

from __future__ import annotations

import json

from fer_training.experiments import main, plan_cells


def test_plan_cells(tiny_npz, tiny_ck_npz):
    cells = plan_cells({"fer": str(tiny_npz), "ck": str(tiny_ck_npz)}, ["arch1", "arch3"], None, 5)
    names = [c["name"] for c in cells]
    assert "fer__arch1__all" in names and "ck__arch3__fold4" in names
    assert len(cells) == 2 + 2 * 5
    assert len(plan_cells({"ck": str(tiny_ck_npz)}, ["arch1"], "0,2", 5)) == 2


def test_run_one_cell_then_skip_it(tiny_ck_npz, tmp_path, capsys):
    args = ["--out-dir", str(tmp_path / "exp"), "--datasets", "ck", "--dataset-path", f"ck={tiny_ck_npz}",
            "--archs", "arch1", "--folds", "0", "--k", "5", "--epochs", "1", "--max-train-images", "40",
            "--results-md", str(tmp_path / "docs" / "results.md"),
            "--figure", str(tmp_path / "docs" / "figures" / "acc.png")]
    assert main(args) == 0
    cell = json.loads((tmp_path / "exp" / "cells" / "ck__arch1__fold0.json").read_text())
    assert cell["epochs_run"] == 1 and "--split subject --fold 0 --folds 5" in cell["command"]
    assert cell["profile"] == "paper"
    md = (tmp_path / "docs" / "results.md").read_text()
    assert "| ck | arch1 |" in md and cell["command"] in md
    assert (tmp_path / "docs" / "figures" / "acc.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(args) == 0
    assert "skipping" in capsys.readouterr().out
