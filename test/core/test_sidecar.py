"""The model's sidecar names its classes: one rule finds it for every file of an export, and every
backend publishes its labels (never FER2013's order by position)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from tiny_onnx import write_linear_onnx, write_sidecar

from fer_perception.errors import ModelLoadError
from fer_perception.inference import create_backend, read_sidecar, sidecar_path
from fer_perception.inference.sidecar import _warned_without_sidecar
from fer_perception.inference.tensorrt_runtime import engine_cache_path
from fer_perception.labels import EMOTION_LABELS

CK6 = ("anger", "disgust", "fear", "happy", "sadness", "surprise")
FERPLUS8 = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")


@pytest.mark.parametrize("name", ["model.onnx", "model_fp32.tflite", "model_fp16.tflite", "model_int8.tflite",
                                  "model.tflite", "model.fp16.b8.0123456789abcdef.engine", "model.engine",
                                  "model.plan"])
def test_one_rule_finds_the_sidecar_of_every_file_of_an_export(tmp_path, name):
    assert sidecar_path(tmp_path / name) == tmp_path / "model.json"


def test_the_rule_for_the_runners_own_engine_names_and_dotted_stems(tmp_path):
    engine = engine_cache_path(tmp_path / "my.model.onnx", "int8", 64, "0123456789abcdef")
    assert sidecar_path(engine) == tmp_path / "my.model.json"
    assert sidecar_path(tmp_path / "arch1_fer2013_tta12.onnx") == tmp_path / "arch1_fer2013_tta12.json"


def test_tensorrt_build_info_files_are_never_taken_for_the_sidecar(tmp_path):
    onnx_path = write_linear_onnx(tmp_path / "model.onnx", 6)
    engine = engine_cache_path(onnx_path, "fp16", 8, "0123456789abcdef")
    engine.with_suffix(".json").write_text(json.dumps({"tensorrt": "10.3", "precision": "fp16"}))  # build info
    write_sidecar(onnx_path, CK6)
    for path in (onnx_path, engine):
        assert read_sidecar(path).labels == CK6 and read_sidecar(path).path == tmp_path / "model.json"


@pytest.mark.parametrize("labels", [CK6, FERPLUS8, EMOTION_LABELS], ids=["6-class", "8-class", "7-class"])
def test_onnxruntime_backend_publishes_the_sidecars_labels(tmp_path, labels):
    model = write_linear_onnx(tmp_path / "model.onnx", len(labels))
    write_sidecar(model, labels)
    backend = create_backend("onnxruntime", model)
    assert backend.labels == labels and backend.describe()["labels"] == list(labels)
    probs = backend.predict(np.zeros((3, 48, 48, 1), np.float32))
    assert probs.shape == (3, len(labels))


def test_a_sidecar_that_names_another_number_of_classes_is_one_clear_error(tmp_path):
    model = write_linear_onnx(tmp_path / "model.onnx", 6)
    write_sidecar(model, EMOTION_LABELS)
    with pytest.raises(ModelLoadError, match=r"labels name 7 classes .*sidecar"):
        create_backend("onnxruntime", model)


def test_no_sidecar_means_fer2013_order_with_one_warning(tmp_path, caplog):
    model = write_linear_onnx(tmp_path / "model.onnx", 7)
    _warned_without_sidecar.discard(str(model))
    with caplog.at_level(logging.WARNING, logger="fer_perception.inference"):
        assert create_backend("onnxruntime", model).labels == EMOTION_LABELS
        create_backend("onnxruntime", model)
    assert sum("has no sidecar" in r.getMessage() for r in caplog.records) == 1
    six = write_linear_onnx(tmp_path / "six.onnx", 6)
    with pytest.raises(ModelLoadError, match="no sidecar"):
        create_backend("onnxruntime", six)


@pytest.mark.parametrize("content,fragment", [
    ("{not json", "not readable JSON"),
    (json.dumps({"labels": []}), "non-empty list"),
    (json.dumps({"labels": ["a", "a"]}), "names a class twice"),
    (json.dumps({"labels": ["a", 3]}), "non-empty list"),
    (json.dumps({"labels": ["a", "b"], "confidence_threshold": 1.5}), "confidence_threshold must be"),
    (json.dumps({"labels": ["a", "b"], "flip_tta": "yes"}), "flip_tta must be true or false"),
])
def test_a_broken_sidecar_is_one_clear_error(tmp_path, content, fragment):
    model = tmp_path / "model.onnx"
    (tmp_path / "model.json").write_text(content)
    with pytest.raises(ModelLoadError, match=fragment):
        read_sidecar(model)


def test_the_sidecar_may_carry_the_models_confidence_threshold(tmp_path):
    model = write_linear_onnx(tmp_path / "model.onnx", 6)
    write_sidecar(model, CK6, confidence_threshold=0.55)
    assert read_sidecar(model).confidence_threshold == 0.55
    assert read_sidecar(model).flip_tta is False  # not said: the graph does not mirror
    assert create_backend("onnxruntime", model).sidecar.confidence_threshold == 0.55


def test_shipped_models_have_sidecars_in_fer2013_order():
    from fer_perception.inference import DEFAULT_MODEL_PATH, MODELS_DIR

    for model in (DEFAULT_MODEL_PATH, MODELS_DIR / "arch1_fer2013_tta12.onnx"):
        assert read_sidecar(model).labels == EMOTION_LABELS
        assert read_sidecar(model).flip_tta  # their graphs average each face with its mirror
    assert read_sidecar(MODELS_DIR / "arch1_fer2013_int8.tflite").path == DEFAULT_MODEL_PATH.with_suffix(".json")
