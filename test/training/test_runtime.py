"""fer_training.runtime: the TensorFlow thread settings that benchmarks/train_throughput.py compares."""

from __future__ import annotations

import pytest

from fer_training.runtime import inter_op_threads


def test_inter_op_threads_default_and_override(monkeypatch):
    monkeypatch.delenv("FER_TF_INTER_OP_THREADS", raising=False)
    assert inter_op_threads(2) == 2 and inter_op_threads(1) == 1 and inter_op_threads(16) == 2
    monkeypatch.setenv("FER_TF_INTER_OP_THREADS", "1")
    assert inter_op_threads(16) == 1
    monkeypatch.setenv("FER_TF_INTER_OP_THREADS", "8")
    assert inter_op_threads(2) == 2  # never more than the intra-op pool
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("FER_TF_INTER_OP_THREADS", bad)
        with pytest.raises(RuntimeError, match="FER_TF_INTER_OP_THREADS"):
            inter_op_threads(2)
