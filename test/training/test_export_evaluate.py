"""fer-export (ONNX/TFLite, checks, folded temperature + flip-TTA), fer-evaluate, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_training import calibration
from fer_training.evaluate import (Predictor, bootstrap_interval, evaluate_model, format_report, main as evaluate_main,
                                   majority_agreement, metrics_from_probs, risk_coverage, suggested_threshold, wilson_interval)
from fer_training.export import ExportError, choose_confidence_threshold, run_export


@pytest.fixture(scope="module")
def exported(random_keras_model, tiny_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    summary = run_export(random_keras_model, out, formats="onnx,tflite-fp32,tflite-int8",
                         calibration_data=tiny_npz, name="arch1_random", log=lambda *a, **k: None)
    return out, summary


def test_fp32_exports_match_keras(exported):
    out, summary = exported
    for fmt in ("onnx", "tflite-fp32"):
        entry = summary["formats"][fmt]
        assert entry["status"] == "exported", entry
        assert entry["max_abs_diff"] <= 1e-5
        assert entry["top1_agreement"] == 1.0
    int8 = summary["formats"]["tflite-int8"]
    assert int8["status"] == "exported" and 0.0 <= int8["top1_agreement"] <= 1.0
    assert "accuracy_delta" in int8
    assert summary["failures"] == []


def test_onnx_contract_and_sidecar(exported, random_keras_model):
    import onnx

    out, _ = exported
    model = onnx.load(str(out / "arch1_random.onnx"))
    assert model.opset_import[0].version >= 17
    (inp,), (outp,) = model.graph.input, model.graph.output
    assert inp.name == "faces" and outp.name == "probabilities"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", 48, 48, 1]
    side = json.loads((out / "arch1_random.json").read_text())
    assert side["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert side["input"]["name"] == "faces" and side["output"]["shape"] == ["N", 7]
    from fer_perception.inference.sidecar import file_sha256

    assert side["source_sha256"] == file_sha256(random_keras_model)
    p = Predictor(out / "arch1_random.onnx")(np.zeros((5, 48, 48), np.uint8))
    assert p.shape == (5, 7)  # dynamic batch


def test_evaluate_onnx_equals_keras(exported, random_keras_model, tiny_npz):
    out, _ = exported
    r_onnx = evaluate_model(out / "arch1_random.onnx", tiny_npz)
    r_keras = evaluate_model(random_keras_model, tiny_npz)
    r_tfl = evaluate_model(out / "arch1_random_fp32.tflite", tiny_npz)
    assert r_onnx["split"] == "public_test" and r_onnx["images"] == 140
    assert r_onnx["accuracy"] == r_keras["accuracy"] == r_tfl["accuracy"]
    assert r_onnx["confusion_matrix"] == r_keras["confusion_matrix"]
    assert r_onnx["ece"] == pytest.approx(r_keras["ece"], abs=1e-5)


def test_folded_temperature_and_flip_tta(random_keras_model, tmp_path):
    summary = run_export(random_keras_model, tmp_path, formats="onnx", temperature="2.5", flip_tta=True,
                         name="wrapped", log=lambda *a, **k: None)
    assert summary["formats"]["onnx"]["max_abs_diff"] <= 1e-5
    from fer_training.models import logits_model
    from fer_training.train import load_keras_model

    core = logits_model(load_keras_model(random_keras_model))
    x = np.random.default_rng(1).uniform(0, 255, (6, 48, 48, 1)).astype(np.float32)
    z = 0.5 * (np.asarray(core(x)) + np.asarray(core(x[:, :, ::-1])))
    want = calibration.softmax(z, 2.5)
    got = Predictor(tmp_path / "wrapped.onnx")(x)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_folded_crop_and_flip_tta_matches_opencv_views(random_keras_model, tmp_path):
    # 12 views: the image, the centre and four corner 40x40 windows enlarged back to 48x48, all
    # mirrored too. The reference is built independently with OpenCV (bilinear, half-pixel centres).
    cv2 = pytest.importorskip("cv2")
    summary = run_export(random_keras_model, tmp_path, formats="onnx,tflite-fp32", temperature="1.5",
                         flip_tta=True, crop_tta=40, name="crops", log=lambda *a, **k: None)
    assert summary["crop_tta"] == 40 and summary["flip_tta"]
    from fer_training.models import logits_model
    from fer_training.train import load_keras_model

    core = logits_model(load_keras_model(random_keras_model))
    faces = np.random.default_rng(2).integers(0, 256, (5, 48, 48)).astype(np.float32)
    views = [faces]
    for top, left in [(4, 4), (0, 0), (0, 8), (8, 0), (8, 8)]:
        views.append(np.stack([cv2.resize(f[top:top + 40, left:left + 40], (48, 48), interpolation=cv2.INTER_LINEAR)
                               for f in faces]))
    views += [v[:, :, ::-1] for v in views]
    z = np.mean([np.asarray(core(np.ascontiguousarray(v)[..., None])) for v in views], axis=0)
    want = calibration.softmax(z, 1.5)
    for exported in ("crops.onnx", "crops_fp32.tflite"):
        got = Predictor(tmp_path / exported)(faces[..., None])
        np.testing.assert_allclose(got, want, atol=2e-4, err_msg=exported)


def test_centre_window_tta_is_four_views_and_says_so_in_the_sidecar(random_keras_model, tmp_path):
    # --crop-tta 44 --crop-tta-windows centre --flip-tta: the face and its centre 44x44 window enlarged
    # back to 48x48, each mirrored - 4 views, twice the default file's 2.
    cv2 = pytest.importorskip("cv2")
    summary = run_export(random_keras_model, tmp_path, formats="onnx", flip_tta=True, crop_tta=44,
                         crop_tta_windows="centre", name="four", log=lambda *a, **k: None)
    assert json.loads((tmp_path / "four.json").read_text())["crop_tta_windows"] == "centre"
    assert summary["crop_tta"] == 44
    from fer_training.models import logits_model
    from fer_training.train import load_keras_model

    core = logits_model(load_keras_model(random_keras_model))
    faces = np.random.default_rng(3).integers(0, 256, (5, 48, 48)).astype(np.float32)
    centre = np.stack([cv2.resize(f[2:46, 2:46], (48, 48), interpolation=cv2.INTER_LINEAR) for f in faces])
    views = [faces, centre, faces[:, :, ::-1], centre[:, :, ::-1]]
    z = np.mean([np.asarray(core(np.ascontiguousarray(v)[..., None])) for v in views], axis=0)
    np.testing.assert_allclose(Predictor(tmp_path / "four.onnx")(faces[..., None]), calibration.softmax(z), atol=2e-4)
    with pytest.raises(ExportError, match="crop-tta-windows"):
        run_export(random_keras_model, tmp_path, formats="onnx", crop_tta=44, crop_tta_windows="corners",
                   log=lambda *a, **k: None)


def test_crop_tta_rejects_a_window_that_does_not_fit(random_keras_model, tmp_path):
    with pytest.raises(ExportError, match="crop-tta"):
        run_export(random_keras_model, tmp_path, formats="onnx", crop_tta=48, log=lambda *a, **k: None)


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (4000, 7))
    labels = np.array([rng.choice(7, p=p) for p in calibration.softmax(z, 2.0)])
    t = calibration.fit_temperature(z, labels)
    assert t == pytest.approx(2.0, rel=0.1)
    t_probs = calibration.fit_temperature(calibration.softmax(z), labels)  # probabilities work too
    assert t_probs == pytest.approx(t, rel=1e-3)
    assert calibration.nll(z, labels, t) <= calibration.nll(z, labels, 1.0)


def test_ece_and_metrics_known_values():
    probs = np.tile([[0.9, 0.1]], (10, 1))
    labels = np.array([0] * 9 + [1])
    assert calibration.expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)
    probs = np.tile([[1.0, 0.0]], (4, 1))
    assert calibration.expected_calibration_error(probs, np.array([0, 0, 1, 1])) == pytest.approx(0.5)
    m = metrics_from_probs(np.eye(3)[[0, 1, 2, 2]], np.array([0, 1, 1, 2]), ["a", "b", "c"])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert m["per_class_recall"] == {"a": 1.0, "b": 0.5, "c": 1.0}
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_risk_coverage_known_values_and_the_threshold_rule():
    # Top probabilities 0.9 (right), 0.8 (right), 0.6 (wrong), 0.55 (wrong).
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    rows = {r["threshold"]: r for r in risk_coverage(probs, labels, thresholds=(0.0, 0.58, 0.7, 0.95))}
    assert rows[0.0]["coverage"] == 1.0 and rows[0.0]["accuracy"] == 0.5
    assert rows[0.58]["kept"] == 3 and rows[0.58]["accuracy"] == pytest.approx(2 / 3)
    assert rows[0.7]["coverage"] == 0.5 and rows[0.7]["accuracy"] == 1.0
    assert rows[0.95]["kept"] == 0 and np.isnan(rows[0.95]["accuracy"])
    table = list(rows.values())
    assert suggested_threshold(table, target=0.6) == 0.58
    assert suggested_threshold(table, target=0.9) == 0.7
    assert suggested_threshold(table, target=1.01) is None


def test_intervals():
    lo, hi = wilson_interval(16, 55)  # disgust on PublicTest: 16 of 55
    assert 0.18 < lo < 0.19 and 0.41 < hi < 0.43
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    probs = np.eye(2)[np.where(rng.random(400) < 0.7, labels, 1 - labels)]
    lo, hi = bootstrap_interval(lambda p, y: float((p.argmax(1) == y).mean()), probs, labels)
    acc = float((probs.argmax(1) == labels).mean())
    assert lo < acc < hi and hi - lo < 0.15
    m = metrics_from_probs(probs, labels, ["a", "b"])
    assert m["accuracy_ci95"][0] < m["accuracy"] < m["accuracy_ci95"][1]
    assert set(m["per_class_recall_ci95"]) == {"a", "b"} and len(m["risk_coverage"]) > 5


def test_confidence_threshold_setting():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    assert choose_confidence_threshold(None, probs, labels) is None
    assert choose_confidence_threshold("none", probs, labels) is None
    assert choose_confidence_threshold("0.55", probs, labels) == 0.55
    # auto: the lowest table threshold whose kept faces are >= 75 % right (0.7 here: two of two).
    assert choose_confidence_threshold("auto", probs, labels, log=lambda *a: None) == 0.7
    for bad in ("1.5", "-0.1", "high"):
        with pytest.raises(ExportError, match="confidence-threshold"):
            choose_confidence_threshold(bad, probs, labels)
    with pytest.raises(ExportError, match="needs --calibration-data"):
        choose_confidence_threshold("auto", probs, None)


def test_export_stores_the_threshold_the_node_reads(random_keras_model, tiny_npz, tmp_path):
    from fer_perception.inference import read_sidecar

    run_export(random_keras_model, tmp_path, formats="onnx", calibration_data=tiny_npz, name="thr",
               confidence_threshold="0.45", log=lambda *a, **k: None)
    assert read_sidecar(tmp_path / "thr.onnx").confidence_threshold == 0.45


def test_logit_adjustment_and_its_choice():
    prior = np.array([0.7, 0.2, 0.1])
    bias = calibration.logit_adjustment(prior, 1.0)
    assert bias.mean() == pytest.approx(0.0) and bias[2] > bias[1] > bias[0]
    np.testing.assert_allclose(bias[2] - bias[0], np.log(7.0))
    assert not calibration.logit_adjustment(prior, 0.0).any()
    with pytest.raises(ValueError):
        calibration.logit_adjustment(np.array([1.0, 0.0]), 0.5)
    # Scores that carry the prior in full: removing all of it (tau 1) is the only way to get every image right.
    labels = np.repeat([0, 1, 2], 10)
    z = np.log(prior)[None, :] + 0.5 * np.eye(3)[labels]
    tau, table = calibration.choose_logit_adjustment(z, labels, prior, taus=(0.0, 0.5, 1.0))
    assert tau == 1.0 and table[-1]["accuracy"] == 1.0 and table[0]["min_recall"] == 0.0
    assert [r["tau"] for r in table] == [0.0, 0.5, 1.0]
    # Accuracy decides beyond the tolerance; within it, the more balanced tau wins.
    labels = np.array([0] * 96 + [1] * 4)
    scores = np.zeros((100, 2))
    scores[:96, 0] = 3.0            # common faces no tau <= 1 flips ...
    scores[:5, 0] = 0.3             # ... but these five flip to the rare class from tau 0.25 (bias gap 0.55)
    scores[5:8, 0] = 1.0            # and these three from tau 0.75 (gap 1.65)
    scores[96:, 0] = 0.5            # the four rare faces are right from tau 0.25 on
    prior2 = np.array([0.9, 0.1])   # bias gap between the classes: 2.2 x tau
    tau, table = calibration.choose_logit_adjustment(scores, labels, prior2, taus=(0.0, 0.25, 0.75), tolerance=0.0)
    assert [round(r["accuracy"], 2) for r in table] == [0.96, 0.95, 0.92] and tau == 0.0
    tau, _ = calibration.choose_logit_adjustment(scores, labels, prior2, taus=(0.0, 0.25, 0.75), tolerance=0.011)
    assert tau == 0.25


def test_export_folds_the_logit_adjustment_into_the_graph(random_keras_model, tiny_npz, tmp_path):
    from fer_perception.inference import read_sidecar
    from fer_training.models import logits_model
    from fer_training.train import load_keras_model

    summary = run_export(random_keras_model, tmp_path, formats="onnx", calibration_data=tiny_npz, name="adj",
                         flip_tta=True, logit_adjust="0.7", log=lambda *a, **k: None)
    assert summary["formats"]["onnx"]["max_abs_diff"] <= 1e-5
    adjustment = summary["logit_adjustment"]
    with np.load(tiny_npz) as zf:
        counts = np.bincount(zf["labels"][zf["split"] == "train"], minlength=7)
    np.testing.assert_allclose(adjustment["class_prior"], counts / counts.sum())
    core = logits_model(load_keras_model(random_keras_model))
    x = np.random.default_rng(2).uniform(0, 255, (5, 48, 48, 1)).astype(np.float32)
    z = 0.5 * (np.asarray(core(x)) + np.asarray(core(x[:, :, ::-1])))
    want = calibration.softmax(z + calibration.logit_adjustment(counts / counts.sum(), 0.7))
    np.testing.assert_allclose(Predictor(tmp_path / "adj.onnx")(x), want, atol=1e-5)
    assert read_sidecar(tmp_path / "adj.onnx").labels  # the node still reads the sidecar
    sidecar = json.loads((tmp_path / "adj.json").read_text())
    assert sidecar["logit_adjustment"]["tau"] == 0.7
    auto = run_export(random_keras_model, tmp_path / "auto", formats="onnx", calibration_data=tiny_npz,
                      logit_adjust="auto", temperature="auto", log=lambda *a, **k: None)
    chosen = auto["logit_adjustment"]
    assert chosen["tau"] in [r["tau"] for r in chosen["table"]]
    best = max(r["accuracy"] for r in chosen["table"])
    eligible = [r for r in chosen["table"] if r["accuracy"] >= best - calibration.LOGIT_ADJUST_ACCURACY_TOLERANCE - 1e-12]
    row = next(r for r in chosen["table"] if r["tau"] == chosen["tau"])
    assert row in eligible and row["balanced_accuracy"] == max(r["balanced_accuracy"] for r in eligible)
    with pytest.raises(ExportError, match="calibration-data"):
        run_export(random_keras_model, tmp_path / "none", formats="onnx", logit_adjust="0.5", log=lambda *a, **k: None)


def test_majority_agreement_scores_only_images_with_a_majority():
    m = majority_agreement(np.eye(3)[[0, 1, 2, 2]], np.array([0, -1, 1, 2]))
    assert m["images"] == 3 and m["accuracy"] == pytest.approx(2 / 3)
    assert m["accuracy_ci95"][0] < 2 / 3 < m["accuracy_ci95"][1]


def test_evaluate_reports_the_annotator_majority_when_the_data_has_votes(exported, tiny_npz, tmp_path):
    out, _ = exported
    model = out / "arch1_random.onnx"
    with np.load(tiny_npz) as z:
        arrays = dict(z)
    test = np.flatnonzero(arrays["split"] == "public_test")
    preds = Predictor(model)(arrays["images"][test]).argmax(1)
    # FER2013-order vote columns; the first 40 test images' annotators agree with the model, the next
    # 40 are "unknown" (no majority), the rest carry no votes at all.
    names = np.array(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "unknown"])
    votes = np.full((len(arrays["labels"]), 8), -1, np.int16)
    votes[test[:80]] = 0
    votes[test[:40], preds[:40]] = 7
    votes[test[40:80], 7] = 7
    np.savez(tmp_path / "votes.npz", ferplus_votes=votes, ferplus_vote_names=names, **arrays)
    r = evaluate_model(model, tmp_path / "votes.npz")
    assert r["annotator_majority"]["images"] == 40 and r["annotator_majority"]["accuracy"] == 1.0
    assert "annotators' majority" in format_report(r)
    assert "annotator_majority" not in evaluate_model(model, tiny_npz)


def test_fer_evaluate_cli_writes_json_and_pngs(exported, tiny_npz, tmp_path):
    out, _ = exported
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text("epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds,images_per_s\n"
                                 "0,0.01,1.9,0.2,1.8,0.25,1,1\n1,0.001,1.5,0.4,1.6,0.35,1,1\n")
    rc = evaluate_main(["--model", str(out / "arch1_random.onnx"), "--data", str(tiny_npz),
                        "--json", str(tmp_path / "m.json"), "--png-dir", str(tmp_path / "png"),
                        "--run-dir", str(run)])
    assert rc == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["format"] == "onnx" and len(m["confusion_matrix"]) == 7
    assert (tmp_path / "png" / "arch1_random_confusion.png").stat().st_size > 1000
    assert (tmp_path / "png" / "run_curves.png").stat().st_size > 1000
    assert evaluate_main(["--model", str(out / "arch1_random.onnx"), "--data", str(tmp_path / "none.npz")]) == 2
