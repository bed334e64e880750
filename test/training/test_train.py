"""fer-train: a short run learns, an interrupted run resumes exactly, distribution works."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_training.data import FER2013_LABELS
from fer_training.train import AugmentConfig, TrainConfig, load_keras_model, main, profile_defaults, train

from .conftest import FER_NAMES, FERPLUS_NAMES, synthetic_faces

FER_TRAIN = [sys.executable, "-m", "fer_training.train"]


def _cfg(data, run_dir, **over) -> TrainConfig:
    values = profile_defaults("best", 400)
    values.update(epochs=3, batch_size=32, deterministic=True)
    values.update(over)
    return TrainConfig(data=str(data), run_dir=str(run_dir), **values)


def _log(run_dir) -> list[dict]:
    with open(Path(run_dir) / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _learnable_cfg(data, run_dir, **over) -> TrainConfig:
    """A quick-learning recipe on the synthetic fixture (no augmentation, Adam, 4 epochs)."""
    values = dict(optimizer="adam", lr=3e-3, schedule="plateau", weight_decay=0.0, epochs=4, dropout=0.2,
                  label_smoothing=0.0, max_train_images=300,
                  augment=AugmentConfig(rotation=0, shift=0, zoom=0, flip=False))
    values.update(over)
    return _cfg(data, run_dir, **values)


@pytest.fixture(scope="module")
def straight_run(tiny_npz, tmp_path_factory):
    cfg = _learnable_cfg(tiny_npz, tmp_path_factory.mktemp("runs") / "straight")
    return cfg, train(cfg, verbose=0)


def test_short_training_lowers_the_loss(straight_run):
    cfg, res = straight_run
    rows = _log(cfg.run_dir)
    losses = [float(r["loss"]) for r in rows]
    assert len(rows) == 4
    assert losses[-1] < 0.8 * losses[0], losses
    # 7 classes: chance is 0.14 (BN moving statistics are still settling after 40 steps).
    assert res["val_accuracy"] > 0.25
    assert 0.0 <= res["val_accuracy_flip_tta"] <= 1.0
    run = Path(cfg.run_dir)
    for f in ("model.keras", "results.json", "state.json", "config.json", "checkpoints/best.keras",
              "checkpoints/last.keras"):
        assert (run / f).exists(), f
    assert list((run / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    assert json.loads((run / "results.json").read_text())["best_epoch"] >= 1


class _Crash(Exception):
    pass


def test_resume_after_a_crash_continues_exactly(straight_run, tiny_npz, tmp_path, monkeypatch):
    """Crash at the worst moment: epoch 2's checkpoint and CSV row are written, its state.json is
    not (the commit point). Resume must redo epoch 2 and end identical to an uninterrupted run."""
    import fer_training.train as T

    straight, _ = straight_run
    crashed = _learnable_cfg(tiny_npz, tmp_path / "crashed", tta_eval=False)
    real = T._atomic_json

    def crash_before_commit(path, obj):
        if path.name == "state.json" and obj["next_epoch"] == 2:
            raise _Crash()
        real(path, obj)

    monkeypatch.setattr(T, "_atomic_json", crash_before_commit)
    with pytest.raises(_Crash):
        train(crashed, verbose=0)
    monkeypatch.setattr(T, "_atomic_json", real)
    run = Path(crashed.run_dir)
    assert json.loads((run / "state.json").read_text())["next_epoch"] == 1
    assert [r["epoch"] for r in _log(run)] == ["0", "1"]  # the uncommitted row is there ...
    with pytest.raises(SystemExit, match="already holds a run"):
        train(crashed, verbose=0)
    train(crashed, verbose=0, resume=True)

    a, b = _log(straight.run_dir), _log(run)
    assert [r["epoch"] for r in b] == ["0", "1", "2", "3"]  # ... and replaced, not duplicated
    for ra, rb in zip(a, b):
        for key in ("lr", "loss", "val_loss", "val_accuracy"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-5, abs=1e-6), (key, ra, rb)
    wa = load_keras_model(Path(straight.run_dir) / "checkpoints" / "last.keras").get_weights()
    wb = load_keras_model(run / "checkpoints" / "last.keras").get_weights()
    assert max(float(np.abs(x - y).max()) for x, y in zip(wa, wb)) < 1e-5
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.keras", "epoch_0004.keras",
                                                                        "last.keras"]
    sa = json.loads((Path(straight.run_dir) / "state.json").read_text())
    sb = json.loads((run / "state.json").read_text())
    assert sa["best_epoch"] == sb["best_epoch"]


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["--run-dir", str(tmp_path / "empty"), "--resume"])


def test_cli_distribute_mirrored_on_two_logical_cpus(tiny_npz, tmp_path):
    run = tmp_path / "mirrored"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        FER_TRAIN + ["--data", str(tiny_npz), "--run-dir", str(run), "--epochs", "1", "--batch-size", "32",
                     "--max-train-images", "128", "--distribute", "mirrored", "--cpu-devices", "2"],
        capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "over 2 replica(s)" in proc.stdout
    res = json.loads((run / "results.json").read_text())
    assert res["epochs_run"] == 1 and 0.0 <= res["val_accuracy"] <= 1.0


def test_array_batches_path_trains_like_the_tf_data_path(straight_run, tmp_path, monkeypatch):
    """JAX/PyTorch backends get a Keras PyDataset instead of tf.data; exercised here on TensorFlow
    (the batches are the same arrays), without TensorBoard files (those need TensorFlow ops)."""
    import fer_training.train as ftrain

    monkeypatch.setattr(ftrain, "_tensorflow_backend", lambda: False)
    batches = ftrain._dataset(np.zeros((70, 48, 48), np.uint8), np.eye(7, dtype=np.float32)[np.arange(70) % 7], 32)
    assert len(batches) == 3 and batches[2][0].shape == (6, 48, 48, 1) and batches[0][0].dtype == np.float32
    straight, straight_res = straight_run
    cfg = TrainConfig.from_dict({**dataclasses.asdict(straight), "run_dir": str(tmp_path / "pydataset")})
    res = train(cfg, verbose=0)
    same = [float(r["loss"]) for r in _log(straight.run_dir)]
    np.testing.assert_allclose([float(r["loss"]) for r in _log(cfg.run_dir)], same, rtol=1e-3)
    assert res["val_accuracy"] == pytest.approx(straight_res["val_accuracy"], abs=0.02)
    assert not (tmp_path / "pydataset" / "tensorboard").exists()


def test_soft_label_targets_blend_votes_into_one_hot(tiny_npz, tmp_path):
    from fer_training import data as fdata
    from fer_training.train import training_targets

    ds = fdata.load_dataset(tiny_npz)
    index = np.arange(4)
    np.testing.assert_array_equal(training_targets(ds, index, 0.0), np.eye(7)[ds.labels[:4]])
    with pytest.raises(fdata.DatasetError, match="ferplus_votes"):
        training_targets(ds, index, 0.3)
    votes = np.zeros((len(ds), 7), np.float32)
    votes[0, 6] = 1.0                                  # annotators say neutral; image 1 has no votes
    ds.soft_labels = votes
    t = training_targets(ds, index, 0.25)
    expected0 = 0.75 * np.eye(7)[ds.labels[0]] + 0.25 * np.eye(7)[6]
    np.testing.assert_allclose(t[0], expected0)
    np.testing.assert_array_equal(t[1], np.eye(7)[ds.labels[1]])
    np.testing.assert_allclose(t.sum(1), 1.0)


def test_cli_soft_labels_without_votes_is_a_clear_error(tiny_npz, tmp_path):
    with pytest.raises(SystemExit, match="ferplus_votes"):
        main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "soft"), "--epochs", "1",
              "--soft-labels", "0.3", "--max-train-images", "64"])


def test_cli_soft_labels_weight_out_of_range(tiny_npz, tmp_path):
    with pytest.raises(SystemExit, match="weight in 0..1"):
        main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "soft"), "--soft-labels", "1.5"])


def test_label_cleaning_drops_training_faces_only(tmp_path):
    from fer_training import data as fdata
    from fer_training.train import TrainConfig, prepare_data

    images, labels = synthetic_faces(70)
    ferplus_column = {FER_NAMES.index(fdata.canonical_label(n)): j for j, n in enumerate(FERPLUS_NAMES[:7])}
    votes = np.zeros((70, 10), np.int16)
    said = labels.copy()
    said[::5] = (labels[::5] + 1) % 7                    # the annotators contradict every fifth face
    votes[np.arange(70), [ferplus_column[c] for c in said]] = 8
    split = np.array(["train"] * 50 + ["public_test"] * 20)
    path = tmp_path / "votes.npz"
    np.savez(path, images=images, labels=labels, label_names=np.array(FER_NAMES), split=split,
             ferplus_votes=votes, ferplus_vote_names=FERPLUS_NAMES)
    _, _, tr, va = prepare_data(TrainConfig(data=str(path), clean_labels="no-vote"))
    np.testing.assert_array_equal(tr, [i for i in range(50) if i % 5])
    np.testing.assert_array_equal(va, np.arange(50, 70))   # validation is never cleaned
    _, _, tr_off, _ = prepare_data(TrainConfig(data=str(path)))
    np.testing.assert_array_equal(tr_off, np.arange(50))


def test_cli_label_cleaning_without_votes_is_a_clear_error(tiny_npz, tmp_path):
    with pytest.raises(SystemExit, match="label cleaning needs .*ferplus_votes"):
        main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "clean"), "--clean-labels", "majority"])
    with pytest.raises(SystemExit):
        main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "clean"), "--clean-labels", "strict"])


def test_augment_overrides(tmp_path):
    from fer_training.train import parse_augment

    base = profile_defaults("best")["augment"]
    got = parse_augment("erase_prob=0.25, rotation=10,flip=false", base)
    assert (got.erase_prob, got.rotation, got.flip, got.zoom) == (0.25, 10.0, False, base.zoom)
    for bad in ("spin=3", "rotation", "rotation=lots"):
        with pytest.raises(SystemExit, match="--augment"):
            parse_augment(bad, base)


def test_non_tensorflow_backend_skips_tensorflow_setup():
    """KERAS_BACKEND=jax (a GPU box without TensorFlow): configure() must not import TensorFlow and
    must refuse the TensorFlow-only options."""
    code = ("import sys\n"
            "from fer_training.runtime import configure\n"
            "configure()\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
            "try:\n"
            "    configure(cpu_devices=2)\n"
            "except RuntimeError as e:\n"
            "    print('refused:', e)\n")
    env = dict(os.environ, KERAS_BACKEND="jax")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: logical CPU devices" in proc.stdout


def test_init_from_copies_matching_layers_and_leaves_a_new_classifier_fresh(straight_run, tmp_path):
    from fer_training.models import build_model
    from fer_training.train import init_weights_from

    cfg, _ = straight_run
    trained = load_keras_model(Path(cfg.run_dir) / "model.keras")
    same = build_model("arch1", 7)
    line = init_weights_from(same, Path(cfg.run_dir) / "model.keras")
    assert line.startswith("init: 25 layers") and "fresh" not in line
    for a, b in zip(same.weights, trained.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    eight = build_model("arch1", 8)  # e.g. CK+ with contempt: every layer but the classifier
    line = init_weights_from(eight, Path(cfg.run_dir) / "model.keras")
    assert line.startswith("init: 24 layers") and "starting fresh: " in line
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a keras file")
    with pytest.raises(SystemExit, match="cannot load"):
        init_weights_from(build_model("arch1", 7), garbage)


def test_cli_fine_tunes_from_a_model(straight_run, tiny_npz, tmp_path, capsys):
    cfg, _ = straight_run
    main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "ft"), "--epochs", "1", "--batch-size", "32",
          "--max-train-images", "64", "--init-from", str(Path(cfg.run_dir) / "model.keras"), "--verbose", "0"])
    assert "init: 25 layers from" in capsys.readouterr().out
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["init_from"].endswith("model.keras")


def test_soften_is_a_temperature_on_the_logits():
    from fer_training.calibration import softmax
    from fer_training.train import soften

    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    np.testing.assert_allclose(soften(softmax(logits), 2.0), softmax(logits, 2.0), atol=1e-6)
    np.testing.assert_allclose(soften(softmax(logits), 1.0), softmax(logits), atol=1e-6)


def test_teacher_targets_are_the_mirror_averaged_softened_teacher_in_the_data_order(straight_run, tiny_npz, tmp_path):
    from fer_training import data as fdata
    from fer_training.train import predict_probs, soften, teacher_targets

    cfg, _ = straight_run
    teacher = Path(cfg.run_dir) / "model.keras"
    images = fdata.load_dataset(tiny_npz).images[:40]
    names = fdata.FER2013_LABELS
    want = soften(predict_probs(load_keras_model(teacher), images, flip_tta=True), 2.0)
    got = teacher_targets(teacher, images, names, 2.0, cache=tmp_path / "cache.npz", log=lambda *a: None)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # The cache answers the same question without the teacher; another temperature is recomputed.
    again = teacher_targets(teacher, images, names, 2.0, cache=tmp_path / "cache.npz", log=lambda *a: 1 / 0)
    np.testing.assert_array_equal(again, got)
    hotter = teacher_targets(teacher, images, names, 4.0, cache=tmp_path / "cache.npz", log=lambda *a: None)
    assert hotter.max() < got.max()
    # A teacher of other classes is refused by name, not silently reordered.
    with pytest.raises(fdata.DatasetError, match="teacher"):
        teacher_targets(teacher, images, names[:3] + ("calm", "bored", "awake", "asleep"), 2.0)


def test_teacher_targets_do_not_mirror_again_a_teacher_whose_graph_mirrors(tmp_path, monkeypatch):
    from fer_training import evaluate
    from fer_training.evaluate import _export_sidecar
    from fer_training.train import soften, teacher_targets

    teacher = tmp_path / "teacher.onnx"
    teacher.write_bytes(b"not run: the predictor is a stand-in")
    (tmp_path / "teacher.json").write_text(json.dumps({"labels": list(FER2013_LABELS), "flip_tta": True}))
    assert _export_sidecar(teacher).flip_tta
    assert _export_sidecar(tmp_path / "other.onnx") is None  # no sidecar: not known to mirror
    seen = []

    class StandIn:
        def __init__(self, path):
            self.num_classes, self.labels = 7, FER2013_LABELS
            self.mirrors_in_graph = _export_sidecar(path).flip_tta

        def __call__(self, images):
            seen.append(images.copy())
            return np.tile(np.linspace(1, 7, 7, dtype=np.float32) / 28, (len(images), 1))

    monkeypatch.setattr(evaluate, "Predictor", StandIn)
    images = np.arange(2 * 48 * 48, dtype=np.uint8).reshape(2, 48, 48)
    got = teacher_targets(teacher, images, FER2013_LABELS, 2.0, log=lambda *a: None)
    assert len(seen) == 1 and np.array_equal(seen[0], images)  # one pass, the faces as they are
    np.testing.assert_allclose(got, soften(np.tile(np.linspace(1, 7, 7) / 28, (2, 1)), 2.0), atol=1e-6)
    (tmp_path / "teacher.json").write_text(json.dumps({"labels": list(FER2013_LABELS), "flip_tta": False}))
    seen.clear()
    teacher_targets(teacher, images, FER2013_LABELS, 2.0, log=lambda *a: None)
    assert len(seen) == 2 and np.array_equal(seen[1], images[:, :, ::-1])  # face, then its mirror


def test_cli_distils_from_a_teacher_and_resume_refuses_another(straight_run, tiny_npz, tmp_path, capsys):
    import shutil

    cfg, _ = straight_run
    teacher = tmp_path / "teacher.keras"
    shutil.copy(Path(cfg.run_dir) / "model.keras", teacher)
    run = tmp_path / "student"
    args = ["--data", str(tiny_npz), "--run-dir", str(run), "--batch-size", "32", "--max-train-images", "64",
            "--max-val-images", "32", "--verbose", "0", "--teacher", str(teacher)]
    main(args + ["--epochs", "2"])
    out = capsys.readouterr().out
    assert "distillation: targets = 0.5 x label + 0.5 x teacher (T = 2)" in out
    config = json.loads((run / "config.json").read_text())
    assert config["distill"] == 0.5 and len(config["teacher_sha256"]) == 64
    assert (run / "teacher_targets.npz").exists() and len(_log(run)) == 2
    state = json.loads((run / "state.json").read_text())
    state["next_epoch"] = 1  # as if stopped after epoch 1 ...
    (run / "state.json").write_text(json.dumps(state))
    shutil.copy(run / "checkpoints" / "last.keras", run / "checkpoints" / "epoch_0001.keras")
    teacher.write_bytes(teacher.read_bytes() + b"\0")  # ... and the teacher file changed meanwhile
    with pytest.raises(SystemExit, match="changed since the run started"):
        main(["--run-dir", str(run), "--resume", "--verbose", "0"])
    with pytest.raises(SystemExit, match="needs --teacher"):
        main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "x"), "--distill", "0.3"])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "y"), "--teacher", str(tmp_path / "none.keras")])


def test_vgg_teacher_trains_and_is_not_a_paper_architecture(tiny_npz, tmp_path):
    from fer_training.models import ARCHITECTURES, count_params

    main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "vgg"), "--arch", "vgg", "--epochs", "1",
          "--batch-size", "32", "--max-train-images", "64", "--max-val-images", "32", "--verbose", "0"])
    model = load_keras_model(tmp_path / "vgg" / "model.keras")
    assert "vgg" not in ARCHITECTURES and count_params(model).total > 4 * 293_951
    assert model.output_shape == (None, 7)


def test_cli_class_weighting_power(tiny_npz, tmp_path):
    main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "cw"), "--epochs", "1", "--batch-size", "32",
          "--max-train-images", "64", "--max-val-images", "32", "--verbose", "0", "--class-weighting", "0.5"])
    assert json.loads((tmp_path / "cw" / "config.json").read_text())["class_weighting"] == 0.5
    with pytest.raises(SystemExit, match=">= 0"):
        main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "neg"), "--class-weighting", "-1"])


def test_plateau_step_cuts_the_rate_after_patience_epochs_without_a_better_val_loss():
    from fer_training.train import plateau_step

    cfg = TrainConfig(schedule="plateau", plateau_factor=0.75, plateau_patience=2, min_lr=1e-3)
    state = dict(plateau_best=float("inf"), plateau_wait=0)
    lr, cuts = 0.01, []
    for val_loss in (1.0, 0.9, 0.95, 0.92, 0.91, 0.8, 0.85, 0.9):   # stalls twice: epochs 2-3, 6-7
        new = plateau_step(state, val_loss, lr, cfg)
        if new is not None:
            lr = new
        cuts.append(new)
    assert cuts == [None, None, None, 0.0075, None, None, None, 0.005625]
    assert state["plateau_best"] == 0.8
    assert plateau_step(dict(plateau_best=0.1, plateau_wait=1), 0.2, 0.0011, cfg) == 1e-3   # floor: min_lr


def test_cli_schedule_options_reach_the_run_config(tiny_npz, tmp_path):
    main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "pl"), "--epochs", "2", "--batch-size", "32",
          "--max-train-images", "64", "--max-val-images", "32", "--verbose", "0", "--schedule", "plateau",
          "--lr", "0.01", "--plateau-factor", "0.75", "--plateau-patience", "3", "--early-stopping-patience", "9"])
    cfg = json.loads((tmp_path / "pl" / "config.json").read_text())
    assert (cfg["schedule"], cfg["plateau_factor"], cfg["plateau_patience"], cfg["early_stopping_patience"]) == \
        ("plateau", 0.75, 3, 9)
    assert [float(r["lr"]) for r in _log(tmp_path / "pl")] == [0.01, 0.01]    # no warm-up, no cut within patience
    for bad, why in ((["--plateau-factor", "1.5"], "plateau-factor"), (["--plateau-patience", "0"], "patience")):
        with pytest.raises(SystemExit, match=why):
            main(["--data", str(tiny_npz), "--run-dir", str(tmp_path / "bad"), *bad])
