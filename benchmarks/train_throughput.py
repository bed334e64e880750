#!/usr/bin/env python3
"""Training throughput of ``fer-train`` under two CPU settings of TensorFlow, side by side.

    .venv/bin/python benchmarks/train_throughput.py --update-doc
    .venv/bin/python benchmarks/train_throughput.py --rounds 1 --accuracy-epochs 0   # quick look

Settings of the same recipe (``--profile best``, ARCH-1, batch 128, the same seed, data order
and augmentation):

* ``before``: ``TF_ENABLE_ONEDNN_OPTS=0`` (TensorFlow's own default on CPUs without AVX-512 VNNI/AMX),
  2 inter-op threads, each epoch augmented before it trains: fer-train's old default;
* ``onednn``: oneDNN kernels on (``TF_ENABLE_ONEDNN_OPTS=1``) and one inter-op thread
  (``FER_TF_INTER_OP_THREADS=1``), augmentation still inline (``FER_AUGMENT_AHEAD=0``);
* ``after``: the same plus the next epoch augmented in a background thread while one trains
  (``FER_AUGMENT_AHEAD=1``): fer-train's default now.

Throughput: ``--rounds`` rounds, each running every setting one after the other (so all see the
same machine load) for 2 epochs on ``--images`` FER2013 Training images; the figure is images/s of
the second epoch (the first pays for tracing), as fer-train's log.csv records it (augmentation,
training and the validation pass included). The table gives the median over rounds and the median
of the per-round ratios.

Accuracy (``--accuracy-epochs`` > 0): each setting trains ``--accuracy-epochs`` epochs on
``--accuracy-images`` Training images with the same seed and is scored on all of PublicTest, so the
two runs differ only in the kernels' floating-point rounding.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test" / "harness")]
import rosharness as rh  # noqa: E402  (doc blocks, machine load)

DOC = REPO / "docs" / "training.md"
DATA = REPO.parent / "shared" / "data" / "fer2013.npz"
ENV_KEYS = ("TF_ENABLE_ONEDNN_OPTS", "FER_TF_INTER_OP_THREADS", "FER_AUGMENT_AHEAD")
SETTINGS = {
    "before": dict(zip(ENV_KEYS, ("0", "2", "0"))),
    "onednn": dict(zip(ENV_KEYS, ("1", "1", "0"))),
    "after": dict(zip(ENV_KEYS, ("1", "1", "1"))),
}
DESCRIPTIONS = {
    "before": "before (fer-train's old default): oneDNN off, 2 inter-op threads, augmentation inline",
    "onednn": "oneDNN on, 1 inter-op thread, augmentation inline",
    "after": "after (fer-train's default): oneDNN on, 1 inter-op thread, next epoch augmented ahead",
}
#: settings of the accuracy run: the two ends (the augmentation arrays are identical either way)
ACCURACY_SETTINGS = ("before", "after")


def fer_train(run_dir: Path, setting: str, data: Path, images: int, epochs: int, val_images: int | None,
              seed: int) -> Path:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(SETTINGS[setting], TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "fer_training.train", "--data", str(data), "--arch", "arch1", "--profile", "best",
           "--epochs", str(epochs), "--max-train-images", str(images), "--seed", str(seed),
           "--run-dir", str(run_dir)]
    if val_images:
        cmd += ["--max-val-images", str(val_images)]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "training"), str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"fer-train ({setting}) failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return run_dir


def log_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def throughput(data: Path, rounds: int, images: int, seed: int) -> dict[str, list[float]]:
    speeds = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="fer_tp_") as tmp:
        for r in range(rounds):
            for name in SETTINGS:
                run = fer_train(Path(tmp) / f"{name}_{r}", name, data, images, 2, 512, seed)
                speeds[name].append(float(log_rows(run)[-1]["images_per_s"]))
                print(f"round {r + 1}/{rounds} {name}: {speeds[name][-1]:.0f} images/s", flush=True)
    return speeds


def accuracy(data: Path, epochs: int, images: int, seed: int) -> dict[str, dict]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="fer_acc_") as tmp:
        for name in ACCURACY_SETTINGS:
            t0 = time.time()
            run = fer_train(Path(tmp) / name, name, data, images, epochs, None, seed)
            res = json.loads((run / "results.json").read_text())
            results[name] = dict(accuracy=res.get("val_accuracy"), minutes=(time.time() - t0) / 60,
                                 images_per_s=statistics.median(float(r["images_per_s"]) for r in log_rows(run)[1:]))
            print(f"{name}: PublicTest {results[name]['accuracy']:.4f} in {results[name]['minutes']:.1f} min",
                  flush=True)
    return results


def markdown(speeds, acc, args, command: str, load: str) -> str:
    lines = [f"Command: `{command}`", "",
             f"Machine: {os.cpu_count()} cores; {load}.", "",
             f"| setting | images/s (median of {len(speeds['after'])} rounds, 2nd epoch, {args.images} images) | "
             "rounds | x before (median of the per-round ratios) |",
             "|---|---|---|---|"]
    for name, values in speeds.items():
        ratios = [v / b for v, b in zip(values, speeds["before"])]
        lines.append(f"| {DESCRIPTIONS[name]} | {statistics.median(values):.0f} | "
                     f"{', '.join(f'{v:.0f}' for v in values)} | {statistics.median(ratios):.2f} |")
    ratios = [a / b for a, b in zip(speeds["after"], speeds["before"])]
    lines += ["", f"Speed-up after / before: median of the per-round ratios **{statistics.median(ratios):.2f}x** "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})."]
    if acc:
        lines += ["", f"Same recipe and seed, {args.accuracy_epochs} epochs on {args.accuracy_images} Training images, "
                      "scored on all 3,589 PublicTest images:", "",
                  "| setting | PublicTest accuracy | wall time | images/s (median epoch) |", "|---|---|---|---|"]
        for name, r in acc.items():
            lines.append(f"| {name} | {r['accuracy']:.4f} | {r['minutes']:.1f} min | {r['images_per_s']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DATA), help="FER2013 .npz (default: ../shared/data/fer2013.npz)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", type=int, default=2048, help="training images per throughput run")
    p.add_argument("--accuracy-epochs", type=int, default=10)
    p.add_argument("--accuracy-images", type=int, default=6000)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--update-doc", action="store_true", help=f"write the tables into {DOC.relative_to(REPO)}")
    args = p.parse_args(argv)
    data = Path(args.data)
    if not data.is_file():
        print(f"train_throughput: {data} not found", file=sys.stderr)
        return 2
    load = rh.machine_load()
    speeds = throughput(data, args.rounds, args.images, args.seed)
    acc = accuracy(data, args.accuracy_epochs, args.accuracy_images, args.seed) if args.accuracy_epochs > 0 else {}
    command = ".venv/bin/python benchmarks/train_throughput.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = markdown(speeds, acc, args, command.strip(), f"{load} (at the start)")
    print(text)
    if args.update_doc:
        rh.update_doc_block(DOC, "train_throughput", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
