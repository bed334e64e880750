"""fer-train killed with SIGKILL in the middle of an epoch, then ``--resume``: at most the epoch in
progress is lost, every finished epoch is kept once, and the run completes.

A tiny real run: ARCH-1 on 320 generated 48 x 48 images (7 classes, class-dependent patterns),
batch 32, 4 epochs, in a subprocess of the project's venv.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.hardening]

EPOCHS = 4


def _dataset(path: Path, n: int = 320) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 7
    yy, xx = np.mgrid[0:48, 0:48]
    images = np.empty((n, 48, 48), np.uint8)
    for i, c in enumerate(labels):  # stripes whose frequency depends on the class, plus noise
        base = 127 + 100 * np.sin((xx + yy * (c % 3)) * (c + 1) * 0.15)
        images[i] = np.clip(base + rng.normal(0, 20, (48, 48)), 0, 255).astype(np.uint8)
    label_names = np.array(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"])
    np.savez(path, images=images, labels=labels, label_names=label_names)
    return path


def _fer_train(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    code = "import sys; from fer_training.train import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _state(run: Path) -> dict | None:
    try:
        return json.loads((run / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_sigkill_mid_epoch_then_resume_loses_at_most_one_epoch(tmp_path):
    pytest.importorskip("fer_training")
    pytest.importorskip("tensorflow")
    data = _dataset(tmp_path / "tiny.npz")
    run = tmp_path / "run"
    common = ["--run-dir", str(run), "--verbose", "0"]
    first = _fer_train(["--data", str(data), "--arch", "arch1", "--profile", "best", "--epochs", str(EPOCHS),
                        "--batch-size", "32", "--seed", "7", *common], tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            st = _state(run)
            if st is not None and st["next_epoch"] >= 1:
                break
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint within 240 s:\n" + (tmp_path / "first.log").read_text()[-3000:])
        # Epoch 1 has started (the checkpoint of epoch 0 is written at its end): kill inside it.
        epoch_seconds = float(next(csv.DictReader(open(run / "log.csv")))["seconds"]) if (run / "log.csv").exists() else 1.0
        time.sleep(min(0.4 * max(epoch_seconds, 0.2), 2.0))
        killed_at = _state(run)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert killed_at["next_epoch"] < EPOCHS, "the run finished before it could be killed"
    assert _state(run) == killed_at, "state.json changed after the kill"
    assert (run / "checkpoints" / "last.keras").exists()

    resumed = _fer_train(["--resume", *common], tmp_path / "resume.log")
    try:
        rc = resumed.wait(timeout=300)
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait(timeout=30)
    out = (tmp_path / "resume.log").read_text()
    assert rc == 0, out[-3000:]
    assert "Traceback" not in out
    # It continued at the epoch that was in progress when it was killed: that partial epoch is the
    # only work lost (< 1 epoch); every finished epoch was kept.
    assert _first_epoch_of(out) == killed_at["next_epoch"], out[-3000:]
    with open(run / "log.csv", newline="") as fh:
        epochs = [int(r["epoch"]) for r in csv.DictReader(fh)]
    assert epochs == list(range(EPOCHS)), epochs
    results = json.loads((run / "results.json").read_text())
    assert results["epochs_run"] == EPOCHS
    assert (run / "model.keras").exists()


def _first_epoch_of(log: str) -> int:
    import re

    m = re.search(r"epochs (\d+)\.\.", log)
    assert m, log[-2000:]
    return int(m.group(1))
