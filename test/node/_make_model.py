"""Write a random-weight ARCH-1 ONNX model for the node tests (imports TensorFlow: run it in a
subprocess, never inside fer_perception).

    python test/node/_make_model.py OUT.onnx [--seed 0]

The model is fer_training.models.build_model("arch1") (input "faces" float32 N x 48 x 48 x 1,
0..255; output "probabilities" N x 7), exported with fer_training.export.export_onnx when the
training package has it, else with tf2onnx directly. BatchNorm statistics are randomised so that
the outputs depend on the face.
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

    import keras
    import numpy as np

    from fer_training.models import INPUT_NAME, OUTPUT_NAME, build_model

    keras.utils.set_random_seed(args.seed)
    model = build_model("arch1")
    rng = np.random.default_rng(args.seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0, 0.2, beta.shape).astype("float32"),
                rng.normal(0, 0.2, mean.shape).astype("float32"),
                rng.uniform(0.5, 2.0, var.shape).astype("float32"),
            ])
    tmp = args.out.with_suffix(".tmp.onnx")
    try:
        from fer_training import export as fer_export
    except ImportError:
        fer_export = None
    if fer_export is not None and hasattr(fer_export, "export_onnx"):
        fer_export.export_onnx(model, tmp)
    else:
        import tensorflow as tf
        import tf2onnx

        spec = (tf.TensorSpec((None, 48, 48, 1), tf.float32, name=INPUT_NAME),)

        @tf.function(input_signature=spec)
        def serve(faces):
            return {OUTPUT_NAME: model(faces, training=False)}

        tf2onnx.convert.from_function(serve, input_signature=spec, opset=13, output_path=str(tmp))
    os.replace(tmp, args.out)  # atomic: a half-written model is never picked up from the cache
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
