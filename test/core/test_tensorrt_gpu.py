"""TensorRT on a real GPU, with the shipped ONNX models only (no TensorFlow: these run on a Jetson).

Marked ``gpu`` and skipped, with the reason, where TensorRT, cuda-python or a GPU is missing (every
machine this project has used so far: no TensorRT figure has been measured yet, docs/jetson.md).
"""

from __future__ import annotations

import os
import shutil
import stat
import threading

import numpy as np
import pytest

from fer_perception.inference import DEFAULT_MODEL_PATH, create_backend
from fer_perception.inference.tensorrt_runtime import tensorrt_status

REASON = tensorrt_status()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=f"TensorRT not usable here: {REASON}")]


@pytest.fixture
def shipped_copy(tmp_path):
    """The shipped model and its sidecar in a folder of the test's own (engines are cached beside it)."""
    for suffix in (".onnx", ".json"):
        shutil.copy(DEFAULT_MODEL_PATH.with_suffix(suffix), tmp_path / DEFAULT_MODEL_PATH.with_suffix(suffix).name)
    return tmp_path / DEFAULT_MODEL_PATH.name


def faces(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, 48, 48, 1)).astype(np.float32)


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-4), ("fp16", 1e-2)])
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_parity_with_onnx_runtime_at_the_batches_a_node_sees(shipped_copy, precision, tol, batch):
    ref = create_backend("onnxruntime", shipped_copy, providers=["CPUExecutionProvider"])
    trt = create_backend("tensorrt", shipped_copy, precision=precision, max_batch=64)
    x = faces(batch)
    assert trt.name == "tensorrt" and trt.labels == ref.labels
    assert np.abs(trt.predict(x) - ref.predict(x)).max() <= tol


def test_from_a_worker_thread_like_the_node(shipped_copy):
    backend = create_backend("tensorrt", shipped_copy, max_batch=8)
    ref = backend.predict(faces(3))
    out, errors = [], []

    def work():
        try:
            out.append(backend.predict(faces(3)))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert not errors and np.abs(out[0] - ref).max() <= 1e-6


def test_cache_hit_and_a_read_only_model_folder(shipped_copy, tmp_path, monkeypatch):
    first = create_backend("tensorrt", shipped_copy, max_batch=8)
    assert first.runner.engine_built
    assert not create_backend("tensorrt", shipped_copy, max_batch=8).runner.engine_built  # hit
    ro = tmp_path / "ro"
    ro.mkdir()
    for f in shipped_copy.parent.glob("arch1_fer2013.*"):
        if f.suffix in (".onnx", ".json"):
            shutil.copy(f, ro / f.name)
    os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        backend = create_backend("tensorrt", ro / shipped_copy.name, max_batch=8)
        assert str(tmp_path / "home") in str(backend.runner.engine_path)  # cached under ~/.cache instead
    finally:
        os.chmod(ro, stat.S_IRWXU)


def test_concurrent_builds_of_one_engine(shipped_copy):
    errors = []

    def build():
        try:
            create_backend("tensorrt", shipped_copy, precision="fp16", max_batch=8)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors
    assert len(list(shipped_copy.parent.glob("arch1_fer2013.fp16.b8.*.engine"))) == 1


def test_blazeface_on_tensorrt_without_tensorflow():
    import cv2
    from skimage import data

    from fer_perception.detection import create_detector

    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    a = create_detector("blazeface", backend="onnxruntime").detect(image)
    b = create_detector("blazeface", backend="tensorrt").detect(image)
    assert len(a) == len(b) == 1 and np.allclose(a[0].box, b[0].box, atol=1.0)
