"""The shipped expression models: their file contract, and the accuracy the model card claims.

Two files ship: the default ``arch1_fer2013.onnx`` (flip-TTA) and the slower, more accurate
``arch1_fer2013_tta12.onnx`` (the same weights with 12-view TTA in the graph). The model card
states each one's PublicTest accuracy in a machine-readable comment
(``<!-- shipped-model public_test_accuracy: 0.xxxx -->``, ``<!-- shipped-model-tta12 ... -->``);
this test re-measures it with the runtime's own ONNX Runtime backend, so the card cannot drift
from the files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fer_perception.inference import DEFAULT_MODEL_PATH, create_backend
from fer_perception.labels import EMOTION_LABELS
from fer_perception.pipeline import FacePipeline

MODEL_CARD = Path(__file__).resolve().parents[2] / "docs" / "MODEL_CARD.md"
TTA12_MODEL_PATH = DEFAULT_MODEL_PATH.with_name("arch1_fer2013_tta12.onnx")
# model file -> the marker of its accuracy in the model card
SHIPPED = {DEFAULT_MODEL_PATH: "shipped-model", TTA12_MODEL_PATH: "shipped-model-tta12"}


@pytest.fixture(scope="module", params=list(SHIPPED), ids=lambda path: path.stem)
def backend(request):
    assert request.param.is_file(), f"a shipped model is missing: {request.param}"
    return create_backend("onnxruntime", request.param, threads=2)


def test_contract_shape_order_and_probabilities(backend):
    sidecar = json.loads(backend.model_path.with_suffix(".json").read_text())
    assert tuple(sidecar["labels"]) == EMOTION_LABELS
    assert sidecar["input"]["shape"] == ["N", 48, 48, 1]
    rng = np.random.default_rng(0)
    for batch in (1, 5, 32):
        faces = rng.uniform(0, 255, size=(batch, 48, 48, 1)).astype(np.float32)
        probs = backend.predict(faces)
        assert probs.shape == (batch, len(EMOTION_LABELS))
        assert probs.dtype == np.float32
        assert np.all(probs >= 0)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_tflite_variants_agree_with_onnx(backend):
    rng = np.random.default_rng(1)
    faces = rng.uniform(0, 255, size=(8, 48, 48, 1)).astype(np.float32)
    reference = backend.predict(faces)
    fp32 = backend.model_path.with_name(backend.model_path.stem + "_fp32.tflite")
    probs = create_backend("tflite", fp32).predict(faces)
    np.testing.assert_allclose(probs, reference, atol=1e-5)


def test_auto_on_a_cpu_runs_the_shipped_litert_twin(backend):
    """The sidecar's hashes tie the shipped .tflite files to the shipped .onnx, so `auto` (the node's
    default) may run LiteRT on a CPU; what it loads must be the very same model."""
    from fer_perception.inference import available_backends

    status = available_backends()
    if status["tensorrt"] is None or status["tflite"] is not None:
        pytest.skip("auto is TensorRT here, or LiteRT is not installed")
    auto = create_backend("auto", backend.model_path)
    assert auto.name == "tflite" and auto.model_path.name == backend.model_path.stem + "_fp32.tflite"
    faces = np.random.default_rng(2).uniform(0, 255, size=(8, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(auto.predict(faces), backend.predict(faces), atol=1e-5)


@pytest.fixture(scope="module")
def public_test(backend, fer2013_npz):
    """(probabilities of the model, labels) on FER2013 PublicTest."""
    data = np.load(fer2013_npz)
    public = data["split"] == "public_test"
    images = data["images"][public].astype(np.float32)[..., None]
    probs = np.concatenate([backend.predict(images[i:i + 256]) for i in range(0, len(images), 256)])
    return probs, data["labels"][public]


def test_public_test_accuracy_matches_model_card(backend, public_test):
    marker = SHIPPED[backend.model_path]
    claimed = re.search(rf"<!-- {marker} public_test_accuracy: ([0-9.]+) -->", MODEL_CARD.read_text())
    assert claimed, f"docs/MODEL_CARD.md must state {backend.model_path.name}'s PublicTest accuracy"
    probs, labels = public_test
    accuracy = float((probs.argmax(1) == labels).mean())
    assert accuracy == pytest.approx(float(claimed.group(1)), abs=5e-4)


def test_sidecar_threshold_is_the_auto_rule_on_public_test(backend, public_test):
    """The sidecar's confidence_threshold is what `fer-export --confidence-threshold auto` picks for this
    very file: the lowest threshold whose kept PublicTest faces reach TARGET_KEPT_ACCURACY."""
    evaluate = pytest.importorskip("fer_training.evaluate")
    from fer_perception.inference import read_sidecar

    probs, labels = public_test
    chosen = evaluate.suggested_threshold(evaluate.risk_coverage(probs, labels))
    assert chosen is not None
    assert read_sidecar(backend.model_path).confidence_threshold == pytest.approx(chosen)
    assert backend.sidecar.confidence_threshold == pytest.approx(chosen)  # what the node's pipeline reads


@pytest.mark.parametrize("model_path", list(SHIPPED), ids=lambda path: path.stem)
def test_recognises_a_smile_on_a_real_photo(model_path):
    """The astronaut (Eileen Collins) smiles broadly: the trained model must say happy."""
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    bgr = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    pipeline = FacePipeline.from_options(model_path, backend="onnxruntime")
    faces = pipeline.process(bgr)
    assert len(faces) == 1
    assert EMOTION_LABELS[int(np.argmax(faces[0].probabilities))] == "happy"


def test_node_defaults_run_detector_and_model_on_litert_on_a_cpu():
    """fer_node's default parameters (config/fer.yaml) with the shipped files: on a CPU with LiteRT
    both BlazeFace and ARCH-1 run on it (the fastest measured path, docs/BENCHMARKS.md)."""
    from fer_perception.inference import available_backends
    from fer_perception.params import defaults
    from fer_perception.perception import NODE_KEY, pipeline_from_params

    status = available_backends()
    if status["tensorrt"] is None or status["tflite"] is not None:
        pytest.skip("auto is TensorRT here, or LiteRT is not installed")
    options = defaults(NODE_KEY)
    assert options["backend"] == "auto" and options["model_path"] == ""
    info = pipeline_from_params(options).info()
    assert info.backend == "tflite" and info.detector_backend == "tflite"
    assert info.model.endswith("arch1_fer2013_fp32.tflite")


def test_tta12_model_is_the_default_weights_with_twelve_views():
    """Both files come from one trained checkpoint; they differ only in the TTA folded into the graph."""
    default = json.loads(DEFAULT_MODEL_PATH.with_suffix(".json").read_text())
    tta12 = json.loads(TTA12_MODEL_PATH.with_suffix(".json").read_text())
    assert tta12["source_sha256"] == default["source_sha256"]
    assert (default["flip_tta"], default.get("crop_tta", 0)) == (True, 0)
    assert (tta12["flip_tta"], tta12["crop_tta"]) == (True, 44)


def test_node_loads_the_tta12_model_by_its_bare_name():
    """`model_path: arch1_fer2013_tta12.onnx` needs no install path: the node finds the shipped file."""
    from fer_perception.params import defaults
    from fer_perception.perception import NODE_KEY, pipeline_from_params

    options = defaults(NODE_KEY)
    options.update(model_path=TTA12_MODEL_PATH.name, backend="onnxruntime")
    info = pipeline_from_params(options).info()
    assert info.backend == "onnxruntime"
    assert Path(info.model) == TTA12_MODEL_PATH


def test_documented_training_ab_figures_match_their_run_artefacts():
    """The model card's lighter-regularisation A/B quotes the run's own results.json, not a retyped number."""
    artefacts = MODEL_CARD.parents[1] / "training" / "artifacts" / "arch1_light40"
    result = json.loads((artefacts / "results.json").read_text())
    config = json.loads((artefacts / "config.json").read_text())
    assert (config["weight_decay"], config["augment"]["erase_prob"], result["epochs_run"]) == (2.5e-4, 0.25, 40)
    card = MODEL_CARD.read_text()
    training_doc = (MODEL_CARD.parent / "training.md").read_text()
    for figure in (result["val_accuracy"], result["val_accuracy_flip_tta"]):
        assert f"{100 * figure:.2f} %" in card and f"{100 * figure:.2f} %" in training_doc
