"""What a newcomer meets on the training CLI: every default in --help, a warm-up that never eats a
short run, one line and exit 2 for an unusable model, a held-out check, and labels matched by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_training import evaluate as fevaluate
from fer_training.evaluate import align_to_data, check_held_out
from fer_training.export import main as export_main
from fer_training.train import WARMUP_MAX_FRACTION, TrainConfig, _lr_schedule, build_parser, model_label_names


@pytest.mark.parametrize("module", ["fer_training.train", "fer_training.evaluate", "fer_training.export",
                                    "fer_training.experiments"])
def test_help_shows_every_default(module):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    if module == "fer_training.train":
        for option, shown in (("--arch", "(default: arch1)"), ("--epochs", "paper 200, best 60"),
                              ("--lr", "paper 0.01, best 0.05"), ("--batch-size", "paper 256, best 128"),
                              ("--warmup-epochs", "at most 10 % of the run")):
            assert shown in text.split(option, 2)[-1][:300], (option, shown)


def test_every_option_with_a_value_states_its_default():
    for action in build_parser()._actions:
        if action.option_strings and action.nargs != 0 and action.dest not in ("help", "run_dir", "data"):
            assert action.help and ("default" in action.help or action.default is not None), action.dest


@pytest.mark.parametrize("epochs", [1, 2, 60])
def test_warm_up_never_exceeds_its_share_of_the_run(epochs):
    cfg = TrainConfig(epochs=epochs, warmup_epochs=3, lr=0.05)
    schedule = _lr_schedule(cfg, steps_per_epoch=10)
    total = epochs * 10
    assert schedule.warmup_steps <= WARMUP_MAX_FRACTION * total
    peak_step = max(range(total), key=lambda s: float(schedule(s)))
    assert float(schedule(peak_step)) == pytest.approx(0.05, rel=1e-3)  # the run reaches its full rate


def test_export_refuses_a_missing_or_broken_model_in_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip file")
    for model in (tmp_path / "missing.keras", broken, tmp_path / "model.onnx"):
        assert export_main(["--model", str(model), "--out-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("fer-export: "), err


def test_evaluate_refuses_a_broken_model_in_one_line(tmp_path, tiny_npz, capsys):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00" * 64)
    for model in (tmp_path / "missing.keras", broken):
        assert fevaluate.main(["--model", str(model), "--data", str(tiny_npz)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("fer-evaluate: "), err


def test_a_split_holding_the_training_images_is_refused(tmp_path, tiny_ck_npz):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(tiny_ck_npz), "split": "subject"}))
    (run / "model.keras").write_bytes(b"")
    with pytest.raises(fevaluate.TrainingOverlapError, match="not a held-out accuracy"):
        check_held_out(run / "model.keras", tiny_ck_npz, "all", 350)
    notes = []
    check_held_out(tmp_path / "elsewhere.onnx", tiny_ck_npz, "all", 350, warn=notes.append)
    assert notes and "held-out accuracy only if" in notes[0]  # nothing says what it trained on
    check_held_out(run / "model.keras", tmp_path / "other.npz", "all", 10, warn=notes.append)  # other data: fine


def test_the_cli_says_why_it_refuses_the_training_images(tmp_path, tiny_ck_npz, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(tiny_ck_npz)}))
    (run / "model.keras").write_bytes(b"")
    assert fevaluate.main(["--model", str(run / "model.keras"), "--data", str(tiny_ck_npz)]) == 2
    assert "split 'all'" in capsys.readouterr().err


def test_model_columns_are_matched_to_the_data_set_by_name_never_by_position():
    probs = np.array([[0.7, 0.2, 0.1]])
    assert align_to_data(probs, ("sadness", "happy", "anger"), ("angry", "happy", "sad")).tolist() == [[0.1, 0.2, 0.7]]
    assert align_to_data(probs, None, ("a", "b", "c")) is probs  # nothing known: as is
    with pytest.raises(ValueError, match="not the data set's"):
        align_to_data(probs, ("contempt", "happy", "anger"), ("angry", "happy", "sad"))


def test_a_runs_class_names_come_from_its_records(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "state.json").write_text(json.dumps({"label_names": ["anger", "contempt"]}))
    assert model_label_names(run / "model.keras") == ("anger", "contempt")
    assert model_label_names(run / "checkpoints" / "best.keras") == ("anger", "contempt")
    assert model_label_names(tmp_path / "loose.keras") is None
    shipped = Path(__file__).resolve().parents[2] / "training" / "artifacts" / "arch1_fer2013" / "arch1_fer2013.keras"
    assert model_label_names(shipped)[0] == "angry"
