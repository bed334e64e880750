"""Tiny generated fixtures for the training tests (no ../shared needed, seconds to build)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("fer_training")

FER_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# The vote columns of FER+ (fer2013.npz's ferplus_vote_names), in FER+'s own order.
FERPLUS_NAMES = np.array(["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                          "contempt", "unknown", "NF"])


def load_tool(name: str):
    """A script of tools/ (not a package) imported as a module, e.g. load_tool("lever_row")."""
    path = Path(__file__).resolve().parents[2] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_faces(n: int, num_classes: int = 7, seed: int = 0, noise: float = 20.0):
    """Learnable 48x48 uint8 images: class c is a bright square at a class-specific position."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    images = rng.normal(100, noise, (n, 48, 48))
    for i, c in enumerate(labels):
        y, x = 6 + 12 * (c // 3), 6 + 12 * (c % 3)
        images[i, y:y + 10, x:x + 10] += 110
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory):
    """FER2013-schema npz: 420 'train' + 140 'public_test' synthetic images."""
    path = tmp_path_factory.mktemp("data") / "tiny_fer.npz"
    images, labels = synthetic_faces(560)
    split = np.array(["train"] * 420 + ["public_test"] * 140)
    np.savez(path, images=images, labels=labels, label_names=np.array(FER_NAMES), split=split,
             subject=np.array([""] * 560))
    return path


@pytest.fixture(scope="session")
def tiny_ck_npz(tmp_path_factory):
    """CK+-schema npz: 7 CK+ classes, 25 subjects, split 'all'."""
    path = tmp_path_factory.mktemp("data") / "tiny_ck.npz"
    images, labels = synthetic_faces(350, seed=3)
    subjects = np.array([f"S{100 + (i % 25):03d}" for i in range(350)])
    names = np.array(["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"])
    np.savez(path, images=images, labels=labels, label_names=names, split=np.array(["all"] * 350),
             subject=subjects)
    return path


@pytest.fixture(scope="session")
def random_keras_model(tmp_path_factory):
    """An untrained ARCH-1 serving model saved as .keras (weights randomised, BN stats non-trivial)."""
    import keras

    from fer_training.models import build_model

    keras.utils.set_random_seed(7)
    model = build_model("arch1")
    rng = np.random.default_rng(7)
    for w in model.weights:
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, w.shape).astype("float32"))
        elif "moving_mean" in w.path:
            w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))
    path = tmp_path_factory.mktemp("models") / "arch1_random.keras"
    model.save(path)
    return path
