"""Make a random-weight ARCH-1 model for the core tests (run in a subprocess: imports TensorFlow).

    python test/harness/_make_random_model.py OUT_DIR [--seed 0]

Writes OUT_DIR/arch1_random.onnx (input "faces" float32 [N,48,48,1] 0..255, output
"probabilities" [N,7]), OUT_DIR/arch1_random_fp32.tflite and arch1_random_int8.tflite (the names
fer-export gives them), and OUT_DIR/reference.npz with 16
fixed faces and Keras' own probabilities for them (the ground truth every backend is compared with).
The model comes from fer_training.models.build_model and is exported with fer_training.export.
BatchNorm statistics are randomised too, so the random model's outputs vary with the input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def random_arch1(seed: int):
    """ARCH-1 with random weights and random BatchNorm statistics (so outputs depend on the face).

    Returns the Keras model and the numpy generator that drew the statistics (for more draws).
    Shared by the core and node test helpers.
    """
    import keras
    import numpy as np

    from fer_training.models import build_model

    keras.utils.set_random_seed(seed)
    model = build_model("arch1")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0, 0.2, beta.shape).astype("float32"),
                rng.normal(0, 0.2, mean.shape).astype("float32"),
                rng.uniform(0.5, 2.0, var.shape).astype("float32"),
            ])
    return model, rng


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    import numpy as np

    from fer_training import export as fer_export

    model, rng = random_arch1(args.seed)
    onnx_path = args.out_dir / "arch1_random.onnx"
    tflite_path = args.out_dir / "arch1_random_fp32.tflite"
    int8_path = args.out_dir / "arch1_random_int8.tflite"
    faces = rng.integers(0, 256, (16, 48, 48, 1)).astype("float32")
    probs = np.asarray(model(faces, training=False), dtype="float32")
    representative = rng.integers(0, 256, (64, 48, 48)).astype("uint8")
    fer_export.export_onnx(model, onnx_path)
    fer_export.export_tflite(model, tflite_path, "fp32")
    fer_export.export_tflite(model, int8_path, "int8", representative)
    bad = _tflite_error(tflite_path, faces, probs)
    if bad:
        raise SystemExit(f"fer_training.export.export_tflite wrote an unusable model: {bad}")
    np.savez(args.out_dir / "reference.npz", faces=faces, probabilities=probs)
    print(f"wrote {onnx_path}, {tflite_path}")
    return 0


def _tflite_error(path, faces, probs) -> str | None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(faces.shape))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], faces)
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    err = float(np.abs(out - probs).max())
    return None if err <= 1e-5 else f"fp32 TFLite differs from Keras by {err}"


if __name__ == "__main__":
    sys.exit(main())
