"""scripts/gpu_train.sh and tools/gpu_bundle.py on the CPU: the bundle round trip, and the script's
ranked, budgeted jobs returning their .keras files and logs (the GPU run itself needs the device)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import FER_NAMES, synthetic_faces

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import gpu_bundle  # noqa: E402


@pytest.fixture(scope="module")
def fer_like(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "fer_like.npz"
    images, labels = synthetic_faces(200)
    votes = np.random.default_rng(0).integers(0, 4, (200, 10)).astype(np.uint8)
    vote_names = np.array(["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                           "contempt", "unknown", "NF"])
    np.savez(path, images=images, labels=labels, label_names=np.array(FER_NAMES),
             split=np.array(["train"] * 150 + ["public_test"] * 50), ferplus_votes=votes, ferplus_vote_names=vote_names)
    return path


@pytest.fixture(scope="module")
def bundle(fer_like, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    gpu_bundle.pack(fer_like, out, quality=95, wheels=False, log=lambda *a: None)
    return out


def test_mosaic_round_trip():
    faces = np.random.default_rng(1).integers(0, 256, (130, 48, 48), dtype=np.uint8)
    image = gpu_bundle.mosaic(faces, columns=64)
    assert image.shape == (3 * 48, 64 * 48)
    np.testing.assert_array_equal(gpu_bundle.unmosaic(image, 130, columns=64), faces)
    with pytest.raises(gpu_bundle.BundleError):
        gpu_bundle.unmosaic(image, 64 * 3 + 1, columns=64)


def test_bundle_unpacks_to_the_same_data_set(fer_like, bundle, tmp_path):
    sys.path.insert(0, str(REPO / "training"))
    from fer_training import data as fdata

    out = gpu_bundle.unpack(bundle, tmp_path / "back.npz", log=lambda *a: None)
    a, b = fdata.load_dataset(fer_like), fdata.load_dataset(out)
    assert b.label_names == a.label_names and list(b.split_names()) == list(a.split_names())
    np.testing.assert_array_equal(b.labels, a.labels)
    np.testing.assert_array_equal(b.soft_labels, a.soft_labels)
    test = a.splits == "public_test"
    np.testing.assert_array_equal(b.images[test], a.images[test])  # lossless PNG
    error = np.abs(b.images[~test].astype(int) - a.images[~test].astype(int))
    assert 0 < error.mean() < 3  # JPEG q95: close, not exact
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["splits"]["train"]["encoding"] == "jpg" and manifest["total_bytes"] > 0


def test_a_corrupt_lossless_split_is_refused(bundle, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["splits"]["public_test"]["sha256_of_source_pixels"] = "0" * 64
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(gpu_bundle.BundleError, match="lossless"):
        gpu_bundle.unpack(broken, tmp_path / "x.npz", log=lambda *a: None)
    assert gpu_bundle.main(["unpack", "--bundle", str(tmp_path / "none"), "--out", str(tmp_path / "y.npz")]) == 2


def test_gpu_train_script_cpu_path(bundle, tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("# test jobs\n"
                    "first|0.3|1|2|1|--seed 3 --batch-size 32\n"
                    "student|0.5|1|1|1|--teacher {job:first} --distill 0.4 --batch-size 32\n"
                    "orphan|0.5|1|1|1|--teacher {job:nothere}\n"
                    "never|1.0|100000|100000|1|--seed 4\n")
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), FER_GPU_BUNDLE=str(bundle), FER_GPU_JOBS=str(jobs), FER_GPU_BUDGET_S="3600",
               KERAS_BACKEND="tensorflow", PYTHON=sys.executable)
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu_train.sh")], env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {"first.keras", "student.keras", "summary.json", "gpu_train.log"}
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["job"], s["status"]) for s in summary] == [
        ("first", "done"), ("student", "done"), ("orphan", "skipped"), ("never", "skipped")]
    assert summary[0]["epochs"] == 2 and summary[0]["results"]["val_images"] == 50
    assert len(summary[0]["log_csv"].strip().splitlines()) == 3  # header + 2 epochs
    assert "/runs/first/model.keras" in summary[1]["args"] and summary[1]["epochs"] == 1
    log = (out / "gpu_train.log").read_text()
    assert "probe:" in log and "distillation: targets = 0.6 x label + 0.4 x teacher" in log
    assert "job orphan: skipped (needs" in log


def test_shipped_job_list_parses():
    lines = [line for line in (REPO / "scripts" / "gpu_jobs.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    names = []
    for line in lines:
        name, share, lo, hi, cost, args = line.split("|")
        assert 0 < float(share) <= 1 and 0 < int(lo) <= int(hi) and float(cost) > 0
        for ref in __import__("re").findall(r"\{job:(\w+)\}", args):
            assert ref in names, f"{name} needs {ref}, which is not an earlier job"
        names.append(name)
    assert len(names) <= 6 and names[0] == "arch1_long"  # one .keras per job + summary + log <= 8 files


def test_gpu_train_script_without_a_bundle(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), FER_GPU_BUNDLE=str(tmp_path / "none"), PYTHON=sys.executable)
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu_train.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "no bundle" in result.stdout
