"""Fixtures of the perception-core tests: test images and a random-weight ARCH-1 model.

The random model is made by ``test/harness/_make_random_model.py`` in a subprocess (it imports TensorFlow,
which fer_perception itself never does) with the training package's own builder and exporter, and
cached in pytest's cache directory keyed by the sources that determine it, so only the first run
pays the ~15-25 s. Without TensorFlow or the training package the model tests skip with the reason.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HELPER = REPO_ROOT / "test" / "harness" / "_make_random_model.py"
TRAINING_SOURCES = [REPO_ROOT / "training" / "fer_training" / n for n in ("models.py", "export.py")]


def _model_key() -> str:
    h = hashlib.sha256()
    for path in [HELPER, *TRAINING_SOURCES]:
        h.update(path.read_bytes() if path.exists() else b"absent")
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def random_model(request, tmp_path_factory) -> dict:
    """{'onnx': Path, 'tflite': Path, 'tflite_int8': Path, 'faces': N x 48 x 48 x 1 float32,
    'probabilities': Keras' probabilities for those faces}."""
    for module in ("tensorflow", "tf2onnx", "fer_training"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: cannot make the random ARCH-1 test model")
    if not all(p.exists() for p in TRAINING_SOURCES):
        pytest.skip("training/fer_training/models.py or export.py is absent: cannot make the test model")
    cache = getattr(request.config, "cache", None)
    key = _model_key()
    out = (cache.mkdir(f"fer_core_model_{key}") if cache is not None
           else tmp_path_factory.mktemp("fer_core_model"))
    files = {"onnx": out / "arch1_random.onnx", "tflite": out / "arch1_random_fp32.tflite",
             "tflite_int8": out / "arch1_random_int8.tflite", "reference": out / "reference.npz"}
    if not all(p.exists() for p in files.values()):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        proc = subprocess.run([sys.executable, str(HELPER), str(out)], capture_output=True, text=True,
                              env=env, timeout=300)
        if proc.returncode != 0:
            pytest.fail(f"making the random ARCH-1 model failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with np.load(files["reference"]) as ref:
        return {**files, "faces": ref["faces"], "probabilities": ref["probabilities"]}


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def obama_bgr(obama_jpg) -> np.ndarray:
    image = cv2.imread(str(obama_jpg))
    assert image is not None, f"cannot read {obama_jpg}"
    return image


@pytest.fixture(scope="session")
def two_people_bgr(two_people_jpg) -> np.ndarray:
    image = cv2.imread(str(two_people_jpg))
    assert image is not None, f"cannot read {two_people_jpg}"
    return image


@pytest.fixture(scope="session")
def blazeface():
    from fer_perception.detection import create_detector

    return create_detector("blazeface", backend="onnxruntime")
