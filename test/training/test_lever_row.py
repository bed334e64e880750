"""tools/lever_row.py: one row of docs/training.md's lever table from a fer-train run."""

from __future__ import annotations

import json
import shlex

import pytest

from fer_training.train import COMMAND_FILE, main as fer_train

from .conftest import load_tool


def _lever_row():
    return load_tool("lever_row")


@pytest.fixture(scope="module")
def one_epoch_run(tiny_npz, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "lever"
    args = ["--data", str(tiny_npz), "--run-dir", str(run), "--epochs", "1", "--batch-size", "32",
            "--max-train-images", "64", "--max-val-images", "32", "--verbose", "0"]
    fer_train(args)
    return run, args


def test_fer_train_records_its_command_line(one_epoch_run):
    run, args = one_epoch_run
    assert (run / COMMAND_FILE).read_text().strip() == "fer-train " + shlex.join(args)


def test_a_row_quotes_the_recorded_command_and_scores_both_data_sets(one_epoch_run, tiny_npz, tiny_ck_npz,
                                                                      tmp_path, capsys):
    run, _ = one_epoch_run
    out_json = tmp_path / "row.json"
    assert _lever_row().main(["--run-dir", str(run), "--name", "one epoch", "--kept", "no",
                              "--fer2013", str(tiny_npz), "--ckplus", str(tiny_ck_npz), "--json", str(out_json)]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "one epoch" and cells[1] == f"`{(run / COMMAND_FILE).read_text().strip()}`"
    assert cells[2] == "1" and cells[-1] == "no"
    figures = json.loads(out_json.read_text())
    assert figures["public_test"]["images"] == 140 and figures["public_test_flip_tta"]["images"] == 140
    assert figures["ckplus_flip_tta"]["images"] == 350 - 50  # CK+'s contempt (every 7th label) left out
    for key in ("accuracy", "ece", "per_class_recall"):
        assert key in figures["public_test_flip_tta"]
    # node-like re-crops: 15 jittered frames of every face of both sets, their accuracy in the row
    recrop = figures["recropped_public_test"], figures["recropped_ckplus"]
    assert [(r["faces"], r["frames"]) for r in recrop] == [(140, 15), (300, 15)]
    assert all(0.0 <= r["frame_accuracy"] <= 1.0 and 0.0 <= r["smoothed_accuracy_at_15"] <= 1.0 for r in recrop)
    assert cells[-2] == "; ".join(f"{100 * r['frame_accuracy']:.2f} / {100 * r['smoothed_accuracy_at_15']:.2f} %"
                                  for r in recrop)


def test_a_run_without_a_recorded_command_needs_one(one_epoch_run, tiny_npz, tmp_path, capsys):
    import shutil

    run = tmp_path / "old_run"
    shutil.copytree(one_epoch_run[0], run)
    (run / COMMAND_FILE).unlink()
    assert _lever_row().main(["--run-dir", str(run), "--name", "x", "--fer2013", str(tiny_npz)]) == 2
    assert "pass --command" in capsys.readouterr().err
