"""The TensorRT runner against a fake ``tensorrt`` module (test/harness/fake_tensorrt.py): version
gates, build settings, typed errors and the fallback under ``auto``. These fakes encode this
project's reading of TensorRT's API; the GPU tests and ``--check`` on a device prove it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fake_tensorrt import install
from tiny_onnx import write_linear_onnx, write_sidecar

from fer_perception.errors import FerError
from fer_perception.inference import create_backend
from fer_perception.inference.tensorrt_runtime import DEFAULT_OPT_BATCH, TensorRTError, TensorRTRunner
from fer_perception.labels import EMOTION_LABELS


@pytest.fixture
def model(tmp_path):
    path = write_linear_onnx(tmp_path / "model.onnx", 7)
    write_sidecar(path, EMOTION_LABELS)
    return path


def test_fp32_engine_is_built_without_tf32_tuned_for_a_few_faces_and_runs(monkeypatch, model):
    fake = install(monkeypatch)
    runner = TensorRTRunner(model, max_batch=64)
    assert fake.flags_cleared == ["TF32"] and fake.flags_set == []
    assert fake.profiles == [((1, 48, 48, 1), (DEFAULT_OPT_BATCH, 48, 48, 1), (64, 48, 48, 1))]
    out = runner.run(np.zeros((3, 48, 48, 1), np.float32))[0]
    np.testing.assert_allclose(out, np.full((3, 7), 1 / 7), rtol=1e-6)
    assert runner.engine_path.is_file() and fake.builds == 1
    TensorRTRunner(model, max_batch=64)  # the cached engine: no second build
    assert fake.builds == 1
    assert len(fake.loggers) == 1  # one trt.Logger per process, whatever the number of runners
    runner.close()


def test_int8_calibrates_on_a_profile_whose_opt_is_the_calibrators_batch(monkeypatch, model):
    fake = install(monkeypatch)
    TensorRTRunner(model, precision="int8", max_batch=64, calibration=np.zeros((40, 48, 48, 1), np.float32))
    assert fake.flags_set == ["FP16", "INT8"]
    assert fake.calibration_profile == ((1, 48, 48, 1), (32, 48, 48, 1), (32, 48, 48, 1))


def test_int8_without_calibration_data_is_refused_with_the_reason(monkeypatch, model):
    install(monkeypatch)
    with pytest.raises(TensorRTError, match="precision int8 on TensorRT needs calibration faces"):
        TensorRTRunner(model, precision="int8", max_batch=8)


@pytest.mark.parametrize("version,ok", [("8.4.3", False), ("8.5.2", True), ("10.3.0", True), ("11.0.0", True),
                                        ("12.0.0", False)])
def test_supported_versions(monkeypatch, model, version, ok):
    install(monkeypatch, version=version)
    if ok:
        TensorRTRunner(model, max_batch=4).close()
    else:
        with pytest.raises(FerError, match="8.5 <= TensorRT < 12"):
            TensorRTRunner(model, max_batch=4)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_11_offers_fp32_only_and_says_which_version_has_the_rest(monkeypatch, model, precision):
    install(monkeypatch, version="11.0.0")
    with pytest.raises(TensorRTError, match=f"precision {precision} needs TensorRT 8.5-10.x"):
        TensorRTRunner(model, precision=precision, max_batch=4, calibration=np.zeros((4, 48, 48, 1), np.float32))


@pytest.mark.parametrize("failure,fragment", [
    ("runtime", "TensorRT could not load model.onnx: TypeError"),
    ("parse", "TensorRT cannot parse"),
    ("build", "TensorRT failed to build"),
    ("shape", "TensorRT refused input shape"),
])
def test_every_tensorrt_failure_is_typed_and_auto_falls_back(monkeypatch, model, caplog, failure, fragment):
    fake = install(monkeypatch)
    fake.fail[failure] = TypeError("pybind11::init(): factory function returned nullptr")
    with pytest.raises(TensorRTError, match=fragment):  # asked for explicitly: the node exits 2 with this
        create_backend("tensorrt", model, max_batch=8)
    with caplog.at_level(logging.WARNING, logger="fer_perception.inference"):
        backend = create_backend("auto", model, max_batch=8)
    assert backend.name == "onnxruntime"  # this model has no LiteRT twin: ONNX Runtime is auto's next choice
    assert any("TensorRT failed" in r.getMessage() for r in caplog.records)


def test_a_failing_first_inference_falls_back_too(monkeypatch, model):
    fake = install(monkeypatch)
    fake.fail["execute"] = RuntimeError("unused")
    with pytest.raises(FerError):
        create_backend("tensorrt", model, max_batch=8)
    assert create_backend("auto", model, max_batch=8).name == "onnxruntime"


def test_blazeface_falls_back_under_auto(monkeypatch, caplog):
    from fer_perception.detection import create_detector

    fake = install(monkeypatch)
    fake.fail["runtime"] = TypeError("pybind11::init(): factory function returned nullptr")
    with caplog.at_level(logging.WARNING, logger="fer_perception.inference"):
        detector = create_detector("blazeface", backend="auto")
    assert detector.backend in ("tflite", "onnxruntime")
    assert any("TensorRT failed for BlazeFace" in r.getMessage() for r in caplog.records)
    with pytest.raises(FerError):
        create_detector("blazeface", backend="tensorrt")
