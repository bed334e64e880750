"""A valid-looking emotion model that raises at run time: for testing fer_node's backend-error path.

``write_batch2_only_model(path)`` writes an ONNX graph with the model contract (input "faces"
N x 48 x 48 x 1 float32, output "probabilities" N x 7) that ONNX Runtime can only run for a batch of
exactly 2 faces: it ends in a Reshape to the constant shape (2, 7). The backend's load-time check
runs a batch of 2, so the model loads; a frame with one face then makes ONNX Runtime raise
inside ``predict`` (a run-time backend failure), and a frame with two faces works again.
"""

from __future__ import annotations

from pathlib import Path


def write_batch2_only_model(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    faces = helper.make_tensor_value_info("faces", TensorProto.FLOAT, ["N", 48, 48, 1])
    probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 7])
    inits = [
        numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array([1, 7], np.int64), "repeats"),
        numpy_helper.from_array(np.array([2, 7], np.int64), "shape2x7"),
        numpy_helper.from_array(np.linspace(0.0, 1.0, 7, dtype=np.float32).reshape(1, 7), "bias"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["faces", "axes"], ["mean4"], keepdims=1),  # N x 1 x 1 x 1
        helper.make_node("Flatten", ["mean4"], ["mean"], axis=1),  # N x 1
        helper.make_node("Tile", ["mean", "repeats"], ["tiled"]),  # N x 7
        helper.make_node("Reshape", ["tiled", "shape2x7"], ["fixed"]),  # fails unless N == 2
        helper.make_node("Add", ["fixed", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(nodes, "batch2_only", [faces], [probs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
