"""Write a random-weight ARCH-1 ONNX model for the node tests (imports TensorFlow: run it in a
subprocess, never inside fer_perception).

    python test/harness/_make_model.py OUT.onnx [--seed 0]

The model is fer_training.models.build_model("arch1") (input "faces" float32 N x 48 x 48 x 1,
0..255; output "probabilities" N x 7) with random BatchNorm statistics, made by
test/harness/_make_random_model.random_arch1 and exported with fer_training.export.export_onnx.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _make_random_model import random_arch1  # one random-model recipe for every test

    from fer_training import export as fer_export

    model, _ = random_arch1(args.seed)
    tmp = args.out.with_suffix(".tmp.onnx")
    fer_export.export_onnx(model, tmp)
    os.replace(tmp, args.out)  # atomic: a half-written model is never picked up from the cache
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
