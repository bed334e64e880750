"""Inference backends: agreement with Keras and each other, the model contract, typed errors.

Tolerances: ONNX Runtime fp32 and LiteRT fp32 vs Keras <= 1e-5 (max |dp|), ONNX vs TFLite fp32
<= 1e-5; LiteRT int8 vs Keras <= 0.05 with top-1 agreement >= 0.75 on random faces (random weights
give flat probabilities, so top-1 is fragile); TensorRT fp32 vs ONNX Runtime <= 1e-4 (TF32/tactic
differences), fp16 <= 1e-2, int8 top-1 >= 0.75.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tiny_onnx import write_linear_onnx

from fer_perception.errors import BackendUnavailableError, InputShapeError, ModelLoadError
from fer_perception.labels import EMOTION_LABELS
from fer_perception.inference import (
    BACKEND_NAMES,
    InferenceBackend,
    available_backends,
    create_backend,
    resolve_tflite_path,
)
from fer_perception.inference.tensorrt_runtime import (
    engine_cache_key,
    engine_cache_path,
    load_calibration_inputs,
    tensorrt_status,
)

TRT_REASON = tensorrt_status()
needs_trt = pytest.mark.skipif(TRT_REASON is not None, reason=f"TensorRT backend unavailable: {TRT_REASON}")
needs_tflite = pytest.mark.skipif(available_backends()["tflite"] is not None, reason="LiteRT not installed")


def _onnx_model(path, in_shape=(48, 48, 1), classes=7, inputs=1):
    """A tiny valid ONNX classifier with a chosen input shape / class count (contract tests)."""
    return write_linear_onnx(path, classes, in_shape=in_shape, inputs=inputs)


# -------------------------------------------------------------------------- agreement


def test_onnxruntime_matches_keras(random_model):
    be = create_backend("onnxruntime", random_model["onnx"], threads=2)
    assert isinstance(be, InferenceBackend) and be.name == "onnxruntime"
    p = be.predict(random_model["faces"])
    assert p.shape == (16, 7) and p.dtype == np.float32
    assert np.abs(p - random_model["probabilities"]).max() <= 1e-5
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    # Not a constant model: different faces give different probabilities.
    assert np.ptp(p, axis=0).max() > 1e-3


@needs_tflite
def test_tflite_fp32_matches_onnx_and_keras(random_model):
    onnx_be = create_backend("onnxruntime", random_model["onnx"])
    lite = create_backend("tflite", random_model["onnx"])  # resolves the sibling _fp32.tflite
    assert lite.name == "tflite" and lite.model_path == random_model["tflite"]
    faces = random_model["faces"]
    pl = lite.predict(faces)
    assert np.abs(pl - onnx_be.predict(faces)).max() <= 1e-5
    assert np.abs(pl - random_model["probabilities"]).max() <= 1e-5
    # Batch sizes change the input tensor size: 1, 16, 3 in a row give the same rows.
    assert np.abs(lite.predict(faces[:1]) - pl[:1]).max() <= 1e-6
    assert np.abs(lite.predict(faces[5:8]) - pl[5:8]).max() <= 1e-6


@needs_tflite
def test_tflite_int8_close_to_keras(random_model):
    be = create_backend("tflite", random_model["onnx"], precision="int8")
    assert be.model_path == random_model["tflite_int8"]
    p = be.predict(random_model["faces"])
    ref = random_model["probabilities"]
    assert np.abs(p - ref).max() <= 0.05
    assert (p.argmax(1) == ref.argmax(1)).mean() >= 0.75


def _export_twins(random_model, tmp_path, *, tamper: str | None = None):
    """Copy the random model's files as one fer-export would leave them: .onnx, LiteRT twins and the
    sidecar listing each file's sha256 (``tamper``: a format whose recorded hash is made wrong)."""
    import hashlib
    import json
    import shutil

    files = {"onnx": tmp_path / "m.onnx", "tflite-fp32": tmp_path / "m_fp32.tflite",
             "tflite-int8": tmp_path / "m_int8.tflite"}
    shutil.copy(random_model["onnx"], files["onnx"])
    shutil.copy(random_model["tflite"], files["tflite-fp32"])
    shutil.copy(random_model["tflite_int8"], files["tflite-int8"])
    formats = {k: {"sha256": hashlib.sha256(v.read_bytes()).hexdigest()} for k, v in files.items()}
    if tamper:
        formats[tamper]["sha256"] = "0" * 64
    (tmp_path / "m.json").write_text(json.dumps({"labels": list(EMOTION_LABELS), "formats": formats}))
    return files


def test_auto_without_tensorrt_prefers_the_litert_twin_of_the_same_export(random_model, tmp_path):
    if TRT_REASON is None:
        pytest.skip("TensorRT present: auto is tensorrt")
    if available_backends()["tflite"] is not None:
        pytest.skip("LiteRT not installed")
    files = _export_twins(random_model, tmp_path)
    be = create_backend("auto", files["onnx"])
    d = be.describe()
    assert be.name == "tflite" and be.model_path == files["tflite-fp32"]
    assert d["labels"][0] == "angry" and d["requested"] == "auto/fp32"
    assert np.abs(be.predict(random_model["faces"]) - random_model["probabilities"]).max() <= 1e-5
    int8 = create_backend("auto", files["onnx"], precision="int8")
    assert int8.name == "tflite" and int8.model_path == files["tflite-int8"] and int8.precision == "int8"
    fp16 = create_backend("auto", files["onnx"], precision="fp16")  # no fp16 file: fp32 twin, logged
    assert fp16.name == "tflite" and fp16.precision == "fp32" and fp16.describe()["requested"] == "auto/fp16"


def test_auto_never_picks_a_stale_or_unlisted_tflite_file(random_model, tmp_path):
    if TRT_REASON is None:
        pytest.skip("TensorRT present: auto is tensorrt")
    # The twin's hash does not match the sidecar (e.g. the .onnx was re-exported, the .tflite not).
    stale = _export_twins(random_model, tmp_path, tamper="tflite-fp32")
    assert create_backend("auto", stale["onnx"]).name == "onnxruntime"
    # No sidecar at all (the random model's own folder): nothing proves the files belong together.
    be = create_backend("auto", random_model["onnx"])
    assert be.name == "onnxruntime" and be.describe()["requested"] == "auto/fp32"


def test_auto_is_onnxruntime_when_litert_is_missing(random_model, tmp_path, monkeypatch):
    if TRT_REASON is None:
        pytest.skip("TensorRT present: auto is tensorrt")
    import fer_perception.inference as inference

    files = _export_twins(random_model, tmp_path)
    monkeypatch.setattr(inference, "_tflite_available", lambda: False)
    assert inference.resolve_backend_name("auto", files["onnx"]) == "onnxruntime"
    assert create_backend("auto", files["onnx"]).name == "onnxruntime"


def test_auto_fp16_falls_back_to_fp32_on_cpu(random_model):
    if TRT_REASON is None:
        pytest.skip("TensorRT present: auto runs fp16 for real")
    be = create_backend("auto", random_model["onnx"], precision="fp16")
    assert be.name == "onnxruntime"
    assert be.precision == "fp32" and be.describe()["requested"] == "auto/fp16"


def test_batches_and_empty_batch(random_model):
    be = create_backend("onnxruntime", random_model["onnx"])
    faces = random_model["faces"]
    many = np.concatenate([faces] * 4)  # 64 faces in one call
    p = be.predict(many)
    assert p.shape == (64, 7)
    assert np.abs(p[48:] - p[:16]).max() <= 1e-6
    assert be.predict(np.empty((0, 48, 48, 1), np.float32)).shape == (0, 7)


# -------------------------------------------------------------------------- errors


def test_wrong_input_shapes_raise_input_shape_error(random_model):
    be = create_backend("onnxruntime", random_model["onnx"])
    bad = [
        np.zeros((2, 48, 48), np.float32),
        np.zeros((2, 48, 48, 3), np.float32),
        np.zeros((2, 64, 64, 1), np.float32),
        np.zeros((48, 48, 1), np.float32),
        np.zeros((2, 48, 48, 1), np.uint8),
        np.zeros((2, 48, 48, 1), np.float64),
        [[0.0] * 48] * 48,
    ]
    for faces in bad:
        with pytest.raises(InputShapeError, match="48 x 48 x 1|float32|NumPy"):
            be.predict(faces)
    assert issubclass(InputShapeError, ValueError)


def test_missing_model_file(tmp_path):
    for name in ("onnxruntime", "tflite", "auto"):
        with pytest.raises(ModelLoadError, match="not found|none of"):
            create_backend(name, tmp_path / "nope.onnx")


def test_corrupt_model_files(tmp_path, random_model):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a model" * 100)
    with pytest.raises(ModelLoadError, match="cannot load"):
        create_backend("onnxruntime", garbage)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(random_model["onnx"].read_bytes()[:5000])
    with pytest.raises(ModelLoadError):
        create_backend("onnxruntime", truncated)
    if available_backends()["tflite"] is None:
        bad_lite = tmp_path / "garbage.tflite"
        bad_lite.write_bytes(b"\x00" * 1000)
        with pytest.raises(ModelLoadError, match="cannot load"):
            create_backend("tflite", bad_lite)


def test_contract_breaking_models(tmp_path):
    assert create_backend("onnxruntime", _onnx_model(tmp_path / "ok.onnx")).predict(
        np.zeros((3, 48, 48, 1), np.float32)).shape == (3, 7)
    with pytest.raises(ModelLoadError, match=r"shape \[None, 5\], but the model's labels name 7 classes"):
        create_backend("onnxruntime", _onnx_model(tmp_path / "five.onnx", classes=5))
    with pytest.raises(ModelLoadError, match="N x 48 x 48 x 1"):
        create_backend("onnxruntime", _onnx_model(tmp_path / "big.onnx", in_shape=(64, 64, 1)))
    with pytest.raises(ModelLoadError, match="N x 48 x 48 x 1"):
        create_backend("onnxruntime", _onnx_model(tmp_path / "rgb.onnx", in_shape=(48, 48, 3)))
    with pytest.raises(ModelLoadError, match="one input"):
        create_backend("onnxruntime", _onnx_model(tmp_path / "two.onnx", inputs=2))
    from fer_perception.blazeface import BLAZEFACE_ONNX_PATH

    with pytest.raises(ModelLoadError):  # a real model, but the detector's
        create_backend("onnxruntime", BLAZEFACE_ONNX_PATH)


def test_unknown_backend_and_precision(random_model):
    with pytest.raises(BackendUnavailableError, match="valid names: auto, onnxruntime, tensorrt, tflite"):
        create_backend("openvino", random_model["onnx"])
    with pytest.raises(BackendUnavailableError, match="precision"):
        create_backend("onnxruntime", random_model["onnx"], precision="int4")
    assert BACKEND_NAMES == ("auto", "onnxruntime", "tensorrt", "tflite")


def test_onnxruntime_fp16_on_cpu_is_unavailable(random_model):
    from fer_perception.inference.runtimes import onnxruntime_providers

    if "TensorrtExecutionProvider" in onnxruntime_providers():
        pytest.skip("this onnxruntime has the TensorRT execution provider")
    with pytest.raises(BackendUnavailableError, match="TensorRT execution provider"):
        create_backend("onnxruntime", random_model["onnx"], precision="fp16")


def test_tflite_needs_a_tflite_file(tmp_path, random_model):
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(random_model["onnx"].read_bytes())
    with pytest.raises(ModelLoadError, match="lone.tflite"):
        resolve_tflite_path(lone, "fp32")
    with pytest.raises(ModelLoadError, match="lone_int8.tflite"):
        create_backend("tflite", lone, precision="int8")


@pytest.mark.skipif(TRT_REASON is None, reason="TensorRT is available here")
def test_tensorrt_unavailable_here_is_a_clear_error(random_model):
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        create_backend("tensorrt", random_model["onnx"])
    assert available_backends()["tensorrt"] == TRT_REASON


def test_no_tensorflow_or_rclpy_in_runtime_imports():
    code = ("import sys, fer_perception.pipeline, fer_perception.inference, fer_perception.blazeface, "
            "fer_perception.preprocessing, fer_perception.inference.tensorrt_runtime\n"
            "bad = [m for m in ('tensorflow', 'keras', 'rclpy', 'tensorrt', 'torch') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_self_check_command(random_model):
    proc = subprocess.run([sys.executable, "-m", "fer_perception.inference", "--check", "--model",
                           str(random_model["onnx"])], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "onnxruntime  available" in proc.stdout and proc.stdout.strip().endswith("OK")


# -------------------------------------------------------------------------- TensorRT


def test_engine_cache_key_changes_with_every_ingredient(tmp_path):
    base = ("10.3.0", "Orin", "8.7", "fp16", "ab" * 32, 32)
    key = engine_cache_key(*base)
    assert len(key) == 16 and key == engine_cache_key(*base)
    for i, other in enumerate(["10.3.1", "RTX 4090", "8.9", "int8", "cd" * 32, 8]):
        changed = list(base)
        changed[i] = other
        assert engine_cache_key(*changed) != key
    path = engine_cache_path(tmp_path / "m.onnx", "fp16", 32, key)
    assert path == tmp_path / f"m.fp16.b32.{key}.engine"


def test_calibration_inputs_from_array_and_npz(tmp_path):
    crops = np.random.default_rng(0).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    x = load_calibration_inputs(crops, (48, 48, 1))
    assert x.shape == (10, 48, 48, 1) and x.dtype == np.float32 and x.max() <= 255
    np.savez(tmp_path / "cal.npz", images=crops)
    assert np.array_equal(load_calibration_inputs(tmp_path / "cal.npz", (48, 48, 1)), x)
    with pytest.raises(ModelLoadError):
        load_calibration_inputs(None, (48, 48, 1))
    with pytest.raises(ModelLoadError):
        load_calibration_inputs(np.zeros((4, 64, 64)), (48, 48, 1))


@pytest.mark.gpu
@needs_trt
@pytest.mark.parametrize("precision, tol", [("fp32", 1e-4), ("fp16", 1e-2)])
def test_tensorrt_matches_onnxruntime(tmp_path, random_model, precision, tol):
    onnx_copy = tmp_path / "arch1_random.onnx"
    onnx_copy.write_bytes(random_model["onnx"].read_bytes())
    ref = create_backend("onnxruntime", onnx_copy, providers=["CPUExecutionProvider"]).predict(random_model["faces"])
    be = create_backend("tensorrt", onnx_copy, precision=precision, max_batch=8)
    assert be.name == "tensorrt" and be.runner.engine_built
    p = be.predict(random_model["faces"])  # 16 > max_batch 8: split in two
    assert np.abs(p - ref).max() <= tol
    assert np.abs(be.predict(random_model["faces"][:3]) - ref[:3]).max() <= tol
    engines = list(tmp_path.glob(f"arch1_random.{precision}.b8.*.engine"))
    assert len(engines) == 1
    again = create_backend("tensorrt", onnx_copy, precision=precision, max_batch=8)
    assert not again.runner.engine_built  # loaded from the cache
    assert np.abs(again.predict(random_model["faces"]) - p).max() <= 1e-6


@pytest.mark.gpu
@needs_trt
def test_tensorrt_int8_with_calibration(tmp_path, random_model):
    onnx_copy = tmp_path / "arch1_random.onnx"
    onnx_copy.write_bytes(random_model["onnx"].read_bytes())
    calib = np.random.default_rng(1).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    be = create_backend("tensorrt", onnx_copy, precision="int8", calibration=calib, max_batch=16)
    p = be.predict(random_model["faces"])
    ref = random_model["probabilities"]
    assert (p.argmax(1) == ref.argmax(1)).mean() >= 0.75
    with pytest.raises(ModelLoadError):
        create_backend("tensorrt", tmp_path / "missing.onnx")


@pytest.mark.gpu
@needs_trt
def test_blazeface_on_tensorrt_matches_onnxruntime(astronaut_bgr, blazeface):
    from fer_perception.detection import create_detector

    trt_det = create_detector("blazeface", backend="tensorrt")
    a, b = blazeface.detect(astronaut_bgr), trt_det.detect(astronaut_bgr)
    assert len(a) == len(b) == 1
    assert np.allclose(a[0].box, b[0].box, atol=1.0)


def test_onnxruntime_int8_points_elsewhere(random_model):
    with pytest.raises(BackendUnavailableError, match="'tensorrt' backend|tflite"):
        create_backend("onnxruntime", random_model["onnx"], precision="int8")


def test_litert_start_up_banner_is_dropped_and_other_stderr_kept(random_model):
    """LiteRT's C++ "Created TensorFlow Lite XNNPACK delegate" line must not reach the node's stderr;
    anything else written to fd 2 meanwhile must still arrive (checked in a fresh process, since the
    banner is printed once per process)."""
    if available_backends()["tflite"] is not None:
        pytest.skip("LiteRT not installed")
    code = (
        "import os, sys\n"
        "from fer_perception.inference import runtimes\n"
        "with runtimes._without_litert_banner():\n"
        "    os.write(2, b'native line kept\\n' + runtimes._LITERT_BANNER + b'\\n')\n"
        "runtimes.TfliteRunner(sys.argv[1])  # the real banner, printed by LiteRT itself\n"
        "print('loaded', file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(random_model["tflite"])], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "XNNPACK delegate" not in r.stderr
    assert r.stderr.splitlines()[-2:] == ["native line kept", "loaded"], r.stderr


def test_model_path_setting_names_a_shipped_file_by_its_bare_name(tmp_path, monkeypatch):
    from fer_perception.inference import DEFAULT_MODEL_PATH, MODELS_DIR, resolve_model_path

    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("") == DEFAULT_MODEL_PATH
    assert resolve_model_path(None) == DEFAULT_MODEL_PATH
    assert resolve_model_path("arch1_fer2013_tta12.onnx") == MODELS_DIR / "arch1_fer2013_tta12.onnx"
    # a file of that name in the working directory wins, and paths are taken as given
    (tmp_path / "arch1_fer2013_tta12.onnx").write_bytes(b"local")
    assert resolve_model_path("arch1_fer2013_tta12.onnx").resolve() == tmp_path / "arch1_fer2013_tta12.onnx"
    assert resolve_model_path("models/missing.onnx") == tmp_path.joinpath("models/missing.onnx").relative_to(tmp_path)
    assert resolve_model_path("no_such_model.onnx").name == "no_such_model.onnx"
    assert not resolve_model_path("no_such_model.onnx").is_absolute()
