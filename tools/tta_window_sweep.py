#!/usr/bin/env python3
"""Accuracy of a trained model with the in-graph test-time augmentation of ``fer-export``, per window size.

    .venv/bin/python tools/tta_window_sweep.py                      # the shipped ARCH-1, sizes 46 44 42 40
    .venv/bin/python tools/tta_window_sweep.py --model runs/a1/model.keras --sizes 44 --split public_test

For each ``--sizes`` value the model is wrapped exactly as ``fer-export --flip-tta --crop-tta SIZE``
wraps it (``fer_training.calibration.serving_model``: the face, its centre and four corner windows
of SIZE pixels enlarged back to 48x48, all mirrored; 12 views) and scored on the split; the first
row is ``--flip-tta`` alone (2 views, the default export). Temperature does not change the argmax,
so it is left at 1. This is how the shipped 12-view file's window (44) was chosen, on PublicTest:
the selection is part of the reported figure (docs/MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

DEFAULT_MODEL = REPO / "training" / "artifacts" / "arch1_fer2013" / "arch1_fer2013.keras"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fer2013.npz"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a .keras model written by fer-train")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--split", default="public_test")
    p.add_argument("--sizes", type=int, nargs="+", default=[46, 44, 42, 40])
    args = p.parse_args(argv)

    from fer_training.runtime import configure

    configure()
    from fer_training.calibration import serving_model
    from fer_training.export import load_eval_data
    from fer_training.train import load_keras_model, predict_probs

    x, y, _, _ = load_eval_data(args.data, None, args.split)
    base = load_keras_model(args.model)
    print(f"{args.model} on {args.data} [{args.split}]: {len(y)} images")
    variants = [("flip (2 views)", dict(flip_tta=True))]
    variants += [(f"flip + crops {size} (12 views)", dict(flip_tta=True, crop_tta=size)) for size in args.sizes]
    for name, options in variants:
        accuracy = float((predict_probs(serving_model(base, **options), x).argmax(1) == y).mean())
        print(f"  {name:<28} accuracy {accuracy:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
