"""benchmarks/train_throughput.py: every setting trains the same recipe through the real fer-train CLI,
and the table reports the medians and per-round ratios of what was measured."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import rosharness as rh

sys.path.insert(0, str(rh.REPO / "benchmarks"))


@pytest.fixture()
def tiny_fer(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    np.savez(path, images=rng.integers(0, 256, (160, 48, 48), dtype=np.uint8), labels=rng.integers(0, 7, 160),
             label_names=np.array(names), split=np.array(["train"] * 128 + ["public_test"] * 32))
    return path


def test_runs_every_setting_and_renders_the_table(tiny_fer):
    import train_throughput as tt

    speeds = tt.throughput(tiny_fer, rounds=1, images=64, seed=1)
    assert set(speeds) == {"before", "onednn", "after"} and all(len(v) == 1 and v[0] > 0 for v in speeds.values())
    speeds = {"before": [50.0, 40.0, 60.0], "onednn": [75.0, 40.0, 60.0], "after": [100.0, 60.0, 60.0]}

    class Args:
        images, accuracy_epochs, accuracy_images = 2048, 0, 0

    text = tt.markdown(speeds, {}, Args, "cmd", "quiet")
    assert "| 50 |" in text and "| 60 |" in text  # the medians of each setting
    assert "**1.50x**" in text  # median of the ratios 2.0, 1.5, 1.0
    # onednn: median 60 images/s; per round 1.5, 1.0, 1.0 times before
    assert "| oneDNN on, 1 inter-op thread, augmentation inline | 60 | 75, 40, 60 | 1.00 |" in text
