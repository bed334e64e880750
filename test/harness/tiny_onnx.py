"""A tiny ONNX model that honours the model contract with any number of classes (no TensorFlow):
faces N x 48 x 48 x 1 -> flatten -> linear -> softmax -> probabilities N x K; and its sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np


def write_linear_onnx(path: Path, num_classes: int = 7, *, in_shape=(48, 48, 1), inputs: int = 1) -> Path:
    """A tiny valid ONNX classifier with a chosen class count (and, for contract tests, input shape
    or a second input)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_in = int(np.prod(in_shape))
    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.01, (n_in, num_classes)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([0, n_in], np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["faces", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph_inputs = [helper.make_tensor_value_info("faces", TensorProto.FLOAT, ["N", *in_shape])]
    if inputs == 2:
        graph_inputs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["N", 1]))
    graph = helper.make_graph(nodes, "tiny", graph_inputs,
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", num_classes])],
                              initializer=[w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_sidecar(model_path: Path, labels: Sequence[str], **extra) -> Path:
    """``<stem>.json`` with ``labels`` (as fer-export writes it) and any extra keys."""
    path = model_path.with_suffix(".json")
    path.write_text(json.dumps({"labels": list(labels), **extra}, indent=2))
    return path
