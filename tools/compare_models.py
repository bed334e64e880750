#!/usr/bin/env python3
"""Two models on the same faces: the paired difference in accuracy, with a bootstrap interval.

    .venv/bin/python tools/compare_models.py OLD_MODEL NEW_MODEL
    .venv/bin/python tools/compare_models.py fer_perception/models/arch1_fer2013.onnx /tmp/candidate.onnx --json cmp.json

Both models (.keras/.onnx/.tflite, scored as they are: an exported file's in-graph TTA included) see
the same images: FER2013 PublicTest, CK+48 (all of it, contempt excluded, in FER2013's order) and
PublicTest's FER+ majority labels. Per set it prints both accuracies and NEW - OLD with a 95 %
paired bootstrap interval (the same resampled faces for both models, so the interval is much
tighter than the difference of two unpaired intervals), and per-class recall of both. This is how
docs/training.md judges a candidate against the shipped file; it selects nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

SHARED = REPO.parent / "shared" / "data"
RESAMPLES = 2000


def paired_difference(right_old: np.ndarray, right_new: np.ndarray, resamples: int = RESAMPLES,
                      seed: int = 0) -> dict:
    """Accuracy of both and NEW - OLD with the 2.5/97.5 percentiles of its paired bootstrap."""
    right_old, right_new = np.asarray(right_old, bool), np.asarray(right_new, bool)
    if right_old.shape != right_new.shape or right_old.ndim != 1 or not len(right_old):
        raise ValueError("paired_difference needs two equally long, non-empty per-face correctness vectors")
    diff = right_new.astype(np.float64) - right_old
    rng = np.random.default_rng(seed)
    boot = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(resamples)])
    return dict(images=int(len(diff)), old_accuracy=float(right_old.mean()), new_accuracy=float(right_new.mean()),
                difference=float(diff.mean()),
                difference_ci95=[float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))])


def per_class_recall(preds: np.ndarray, labels: np.ndarray, label_names) -> dict:
    return {name: float((preds[labels == c] == c).mean()) for c, name in enumerate(label_names)
            if (labels == c).any()}


def compare(old_path: Path, new_path: Path, fer2013: Path, ckplus: Path) -> dict:
    from fer_training import data as fdata
    from fer_training.evaluate import Predictor, align_to_data, select_split

    fer = fdata.load_dataset(fer2013)
    sets = []
    public_test, _ = select_split(fer, "public_test")
    sets.append(("public_test", fer.images[public_test], fer.labels[public_test], fer.label_names))
    if fer.majority_labels is not None:
        majority = fer.majority_labels[public_test]
        keep = majority >= 0
        sets.append(("fer_plus_majority", fer.images[public_test][keep], majority[keep], fer.label_names))
    if ckplus.exists():
        ck = fdata.to_fer2013_order(fdata.load_dataset(ckplus))
        sets.append(("ckplus", ck.images, ck.labels, ck.label_names))

    preds = {}
    for which, path in (("old", old_path), ("new", new_path)):
        predictor = Predictor(path)
        preds[which] = {name: align_to_data(predictor(images), predictor.labels, names).argmax(1)
                        for name, images, _, names in sets}
    out = {"old": str(old_path), "new": str(new_path)}
    for name, _, labels, names in sets:
        old, new = preds["old"][name], preds["new"][name]
        out[name] = dict(paired_difference(old == labels, new == labels),
                         old_recall=per_class_recall(old, labels, names),
                         new_recall=per_class_recall(new, labels, names))
    return out


def report(result: dict) -> str:
    lines = [f"old: {result['old']}", f"new: {result['new']}"]
    for name, r in result.items():
        if not isinstance(r, dict):
            continue
        lo, hi = r["difference_ci95"]
        lines.append(f"{name} ({r['images']} faces): old {100 * r['old_accuracy']:.2f} %, new {100 * r['new_accuracy']:.2f} %, "
                     f"new - old {100 * r['difference']:+.2f} pt (95 % paired bootstrap {100 * lo:+.2f}..{100 * hi:+.2f})")
        lines.append("  recall old / new: " + ", ".join(
            f"{c} {r['old_recall'][c]:.2f} / {r['new_recall'][c]:.2f}" for c in r["old_recall"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old", type=Path, help="the reference model (e.g. the shipped file)")
    p.add_argument("new", type=Path, help="the candidate")
    p.add_argument("--fer2013", type=Path, default=SHARED / "fer2013.npz")
    p.add_argument("--ckplus", type=Path, default=SHARED / "ckplus48.npz")
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args(argv)
    for path in (args.old, args.new, args.fer2013):
        if not path.is_file():
            print(f"compare_models: {path} not found", file=sys.stderr)
            return 2
    result = compare(args.old, args.new, args.fer2013, args.ckplus)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
