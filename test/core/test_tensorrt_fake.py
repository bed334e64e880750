"""The TensorRT runner against a fake ``tensorrt`` module (test/harness/fake_tensorrt.py): version
gates, build settings, typed errors and the fallback under ``auto``. These fakes encode this
project's reading of TensorRT's API; the GPU tests and ``--check`` on a device prove it."""

from __future__ import annotations

import logging
from pathlib import Path

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


def test_blazeface_falls_back_under_auto(monkeypatch, caplog, tmp_path):
    import shutil

    from fer_perception.blazeface import BLAZEFACE_ONNX_PATH
    from fer_perception.detection import create_detector

    # A copy, so the fake's engine is cached in tmp_path and not beside the package's own model.
    onnx = shutil.copy(BLAZEFACE_ONNX_PATH, tmp_path / BLAZEFACE_ONNX_PATH.name)
    fake = install(monkeypatch)
    fake.fail["runtime"] = TypeError("pybind11::init(): factory function returned nullptr")
    with caplog.at_level(logging.WARNING, logger="fer_perception.inference"):
        detector = create_detector("blazeface", backend="auto", model_path=onnx)
    assert detector.backend == "onnxruntime"
    assert any("TensorRT failed for BlazeFace" in r.getMessage() for r in caplog.records)
    with pytest.raises(FerError):
        create_detector("blazeface", backend="tensorrt", model_path=onnx)
    assert not list(BLAZEFACE_ONNX_PATH.parent.glob("*.engine"))


def test_host_buffers_are_page_locked_and_freed(monkeypatch, model):
    fake = install(monkeypatch)
    runner = TensorRTRunner(model, max_batch=8)
    assert len(fake.pinned) == 2  # input and output staging buffers: cudaMallocHost, not numpy's pageable memory
    runner.run(np.zeros((8, 48, 48, 1), np.float32))
    runner.close()
    assert fake.pinned == {} and fake.device == {}


def test_the_cache_key_tells_jetson_modules_apart(monkeypatch, model, tmp_path):
    import fer_perception.inference.tensorrt_runtime as trt_runtime

    install(monkeypatch)
    paths = []
    for board in ("NVIDIA Jetson Orin NX Developer Kit", "NVIDIA Jetson Orin Nano Developer Kit"):
        dt = tmp_path / f"model_{len(paths)}"
        dt.write_bytes(board.encode() + b"\0")
        monkeypatch.setattr(trt_runtime, "DEVICE_TREE_MODEL", dt)
        paths.append(TensorRTRunner(model, max_batch=8).engine_path)
    assert paths[0] != paths[1]  # same GPU name "Orin", capability 8.7, SMs and memory: the board decides


def test_a_prebuilt_engine_loads_as_it_is_and_a_foreign_one_says_so(monkeypatch, model, tmp_path):
    fake = install(monkeypatch)
    engine = tmp_path / "prebuilt.engine"
    engine.write_bytes(b"fake-engine")
    runner = TensorRTRunner(engine)
    assert fake.builds == 0 and runner.engine_path == engine and runner.max_batch == 8
    foreign = tmp_path / "foreign.engine"
    foreign.write_bytes(b"built for another GPU")
    with pytest.raises(TensorRTError, match="does not deserialise: it was built for another GPU"):
        TensorRTRunner(foreign)


def test_concurrent_builds_and_stale_engine_clean_up(monkeypatch, model):
    import json
    import threading

    from fer_perception.inference.tensorrt_runtime import build_info_path, engine_cache_path

    install(monkeypatch)
    # An engine of this model for the same GPU and TensorRT but an older ONNX: superseded, removed.
    old = engine_cache_path(model, "fp32", 8, "0" * 16)
    # Same name pattern, built by another TensorRT sharing the folder: kept. Unknown provenance: kept.
    other_trt = engine_cache_path(model, "fp32", 8, "1" * 16)
    unknown = engine_cache_path(model, "fp32", 8, "2" * 16)
    gpu = {"name": "Fake Orin", "compute_capability": "8.7", "multiprocessors": 0, "memory_mb": 0,
           "device_model": ""}
    for path, version in ((old, "10.3.0"), (other_trt, "8.6.1"), (unknown, None)):
        path.write_bytes(b"x")
        if version:
            build_info_path(path).write_text(json.dumps({"onnx": str(model), "tensorrt": version, "gpu": gpu}))
    old.with_suffix(".calib").write_bytes(b"calibration table")
    errors = []

    def build():
        try:
            TensorRTRunner(model, max_batch=8).close()
        except Exception as e:  # noqa: BLE001 - any failure of a concurrent build fails the test
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert not old.exists() and not build_info_path(old).exists() and not old.with_suffix(".calib").exists()
    assert other_trt.exists() and unknown.exists()
    assert not list(model.parent.glob("*.tmp"))  # every process wrote its own temporary file and renamed it
    built = [p for p in model.parent.glob("*.engine") if p not in (other_trt, unknown)]
    assert len(built) == 1 and build_info_path(built[0]).is_file()
    assert read_sidecar_labels(built[0]) == EMOTION_LABELS  # the sidecar, never the build info


def read_sidecar_labels(path):
    from fer_perception.inference import read_sidecar

    return read_sidecar(path).labels


def test_fer_export_builds_the_engine_the_node_loads(monkeypatch, model):
    pytest.importorskip("fer_training")
    from fer_training.export import export_tensorrt

    fake = install(monkeypatch)
    engine = export_tensorrt(model, precision="fp16", max_batch=64)
    assert fake.builds == 1 and engine.parent == model.parent and ".fp16.b64." in engine.name
    runner = TensorRTRunner(model, precision="fp16", max_batch=64)  # what fer_node does with precision fp16
    assert runner.engine_path == engine and not runner.engine_built and fake.builds == 1
    runner.close()
    fake.fail["runtime"] = TypeError("pybind11::init(): factory function returned nullptr")
    with pytest.raises(FerError):  # fer-export reports this as "skipped", see run_export
        export_tensorrt(model)


def test_jetson_docs_pin_cuda_python_to_the_jetpacks_cuda_minor():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "jetson.md").read_text()
    assert 'pip install "cuda-python==12.6.*"' in doc and '"cuda-python==12.*"' not in doc


def test_the_cuda_check_script_runs_its_checks(monkeypatch, tmp_path, capsys):
    """tools/cuda_check.py (scripts/gpu_check.sh) against the fake: the code path a GPU box runs."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tools" / "cuda_check.py"
    spec = importlib.util.spec_from_file_location("cuda_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    install(monkeypatch)
    assert module.main(["--json", str(tmp_path / "out.json")]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["checks"]["pinned_round_trip"] == "ok" and result["checks"]["error_mapping"].startswith("ok")
    assert result["gpu"]["name"] == "Fake Orin"


def test_the_self_check_reports_versions_and_catches_an_engine_that_disagrees(monkeypatch, tmp_path):
    """--check --backend tensorrt: the fake engine answers the uniform distribution, which is not what
    ONNX Runtime says of the astronaut's face, so the check must fail and say where."""
    import dataclasses
    import shutil

    import fer_perception.blazeface as blazeface
    from fer_perception.inference.__main__ import check

    # The check's detector caches its engine beside BlazeFace's ONNX file: copies, not the package's.
    for key, spec in list(blazeface.MODELS.items()):
        monkeypatch.setitem(blazeface.MODELS, key, dataclasses.replace(
            spec, onnx_path=Path(shutil.copy(spec.onnx_path, tmp_path / spec.onnx_path.name)),
            tflite_path=Path(shutil.copy(spec.tflite_path, tmp_path / spec.tflite_path.name))))
    install(monkeypatch)
    lines = []
    rc = check(DEFAULT_MODEL_PATH_FOR_CHECK(), ["tensorrt"], "fp32", out=lines.append)
    text = "\n".join(lines)
    assert rc == 1 and "CUDA runtime 12.6, driver 12.6" in text and "Fake Orin" in text
    assert "tensorrt     (tensorrt, fp32)" in text and "built now" in text
    assert "OUTSIDE 0.0001" in text
    assert not list(blazeface.MODEL_DIR.glob("*.engine"))


def DEFAULT_MODEL_PATH_FOR_CHECK():
    import shutil
    import tempfile
    from pathlib import Path

    from fer_perception.inference import DEFAULT_MODEL_PATH

    folder = Path(tempfile.mkdtemp())  # engines are cached beside the model: not in the package
    for suffix in (".onnx", ".json", "_fp32.tflite"):
        src = DEFAULT_MODEL_PATH.with_name(DEFAULT_MODEL_PATH.stem + suffix)
        shutil.copy(src, folder / src.name)
    return folder / DEFAULT_MODEL_PATH.name
