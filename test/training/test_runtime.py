"""fer_training.runtime: the TensorFlow thread settings that benchmarks/train_throughput.py compares."""

from __future__ import annotations

import pytest

from fer_training.runtime import augment_ahead, inter_op_threads


def test_inter_op_threads_default_and_override(monkeypatch):
    monkeypatch.delenv("FER_TF_INTER_OP_THREADS", raising=False)
    assert inter_op_threads(2) == 1 and inter_op_threads(1) == 1 and inter_op_threads(16) == 1
    monkeypatch.setenv("FER_TF_INTER_OP_THREADS", "1")
    assert inter_op_threads(16) == 1
    monkeypatch.setenv("FER_TF_INTER_OP_THREADS", "8")
    assert inter_op_threads(2) == 2  # never more than the intra-op pool
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("FER_TF_INTER_OP_THREADS", bad)
        with pytest.raises(RuntimeError, match="FER_TF_INTER_OP_THREADS"):
            inter_op_threads(2)


def test_augment_ahead_switch(monkeypatch):
    monkeypatch.delenv("FER_AUGMENT_AHEAD", raising=False)
    assert augment_ahead() is True
    monkeypatch.setenv("FER_AUGMENT_AHEAD", "0")
    assert augment_ahead() is False
    monkeypatch.setenv("FER_AUGMENT_AHEAD", "yes")
    with pytest.raises(RuntimeError, match="FER_AUGMENT_AHEAD"):
        augment_ahead()


def test_training_processes_get_onednn_unless_told_otherwise():
    """fer-train's default is oneDNN on, set before TensorFlow loads; an explicit value wins."""
    import os
    import subprocess
    import sys

    code = ("import os, fer_training.runtime as r; os.environ['KERAS_BACKEND'] = 'jax'; r.configure(); "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'])")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "TF_ENABLE_ONEDNN_OPTS": "0"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
