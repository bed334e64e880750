#!/usr/bin/env python3
"""Reproducibly make fer_perception/models/blazeface_{short,full}_range.{tflite,onnx} from MediaPipe's wheel.

What it does, step by step (nothing here is needed at runtime; TensorFlow/tf2onnx are tool-only):

1. ``pip download --no-deps mediapipe==0.10.21`` (a wheel from PyPI) unless ``--wheel`` is given,
   and check its SHA-256 against the one this script was written for.
2. Extract ``mediapipe/modules/face_detection/face_detection_short_range.tflite`` (BlazeFace short
   range, 128x128 RGB in [-1, 1], outputs ``regressors`` [1, 896, 16] and ``classificators``
   [1, 896, 1]) and MediaPipe's Apache-2.0 LICENSE.
3. Convert it with ``python -m tf2onnx.convert --tflite ... --opset 13``.
4. Make the batch dimension dynamic (input/outputs ``N``; the 4 Reshape nodes' leading ``1`` becomes
   ``0`` = "copy the input's batch"), so several tiles of one frame run in one call and TensorRT can
   build a dynamic-batch profile. Drop the unused ``ai.onnx.ml`` opset import.
   For the full-range model (``--variant full``: ``face_detection_full_range_sparse.tflite``, 192x192,
   outputs [1, 2304, 16] / [1, 2304, 1] named ``Identity``/``Identity_1``), two more steps: before
   step 3 its 46 sparse weight tensors (tf2onnx cannot read TFLite sparsity) are densified - LiteRT
   runs the model once without delegates keeping every tensor, each DENSIFY op's dense output is
   written as a constant buffer and the op dropped (``densify_tflite``); after it, the ONNX input/outputs
   are renamed ``input``/``regressors``/``classificators`` like the short-range model's. The shipped
   .tflite stays the original sparse file (LiteRT runs it as it is).
5. Verify: onnx.checker, and ONNX Runtime vs. LiteRT on random inputs (max abs diff printed; must be
   below 1e-3 on regressors scaled ~100 and classificators) and batch 3 == 3 x batch 1.

Usage (from the repository root, in .venv)::

    python tools/make_blazeface_onnx.py                 # downloads the wheel into a temp dir
    python tools/make_blazeface_onnx.py --wheel /tmp/mp/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl
    python tools/make_blazeface_onnx.py --variant full --wheel /tmp/mp/mediapipe-0.10.21-...whl
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO_ROOT / "fer_perception" / "models"
MEDIAPIPE_VERSION = "0.10.21"
LICENSE_MEMBER = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"
# variant -> (wheel member, SHA-256 of it in every mediapipe 0.10.21 wheel (platform independent),
# output file stem, input side)
VARIANTS = {
    "short": ("mediapipe/modules/face_detection/face_detection_short_range.tflite",
              "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8", "blazeface_short_range", 128),
    "full": ("mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
             "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1", "blazeface_full_range", 192),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         f"mediapipe=={MEDIAPIPE_VERSION}", "-d", str(dest)],
        check=True,
    )
    wheels = sorted(dest.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download produced no mediapipe {MEDIAPIPE_VERSION} wheel in {dest}")
    return wheels[0]


def densify_tflite(sparse_path: Path, dense_path: Path, side: int) -> None:
    """Write ``sparse_path`` with every DENSIFY op replaced by its dense output as a constant."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    interp = Interpreter(model_path=str(sparse_path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], np.zeros((1, side, side, 3), np.float32))
    interp.invoke()  # DENSIFY outputs do not depend on the input
    model = flatbuffer_utils.read_model(str(sparse_path))
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    kept, densified = [], 0
    for op in graph.operators:
        if codes[op.opcodeIndex] != schema.BuiltinOperator.DENSIFY:
            kept.append(op)
            continue
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(interp.get_tensor(op.outputs[0]).tobytes(), np.uint8)
        model.buffers.append(buffer)
        # The dense output becomes a constant; the (now unused) sparse input gets the same dense
        # data so that no sparse tensor is left for tf2onnx to trip over.
        for tensor in (graph.tensors[op.outputs[0]], graph.tensors[op.inputs[0]]):
            tensor.buffer = len(model.buffers) - 1
            tensor.sparsity = None
        densified += 1
    graph.operators = kept
    flatbuffer_utils.write_model(model, str(dense_path))
    print(f"densified {densified} sparse weight tensors -> {dense_path.name}")


def rename_io(onnx_path: Path) -> None:
    """input_1 / Identity / Identity_1 (full range) -> input / regressors / classificators."""
    import onnx

    model = onnx.load(str(onnx_path))
    graph = model.graph
    names = {graph.input[0].name: "input"}
    for out in graph.output:
        last = out.type.tensor_type.shape.dim[-1].dim_value
        names[out.name] = "regressors" if last == 16 else "classificators"
    for value in list(graph.input) + list(graph.output):
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    onnx.save(model, str(onnx_path))


def make_batch_dynamic(onnx_path: Path, variant: str = "short") -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    inits = {init.name: init for init in graph.initializer}
    patched = nodes = 0
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        nodes += 1
        shape_init = inits[node.input[1]]
        shape = numpy_helper.to_array(shape_init).copy()
        if shape[0] == 0:  # initializer shared with an already patched Reshape
            continue
        if shape[0] != 1:
            raise SystemExit(f"unexpected Reshape target {shape.tolist()} in {node.name}")
        shape[0] = 0  # copy the batch dimension from the input (allowzero=0 semantics)
        shape_init.CopyFrom(numpy_helper.from_array(shape, shape_init.name))
        patched += 1
    # Shared initializers are patched once each; every Reshape must now read a 0-led shape.
    for node in graph.node:
        if node.op_type == "Reshape":
            assert numpy_helper.to_array(inits[node.input[1]])[0] == 0
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    del graph.value_info[:]  # stale static shapes; ORT/TensorRT infer them again
    # tf2onnx names folded constants with a process-wide counter that differs run to run; rename
    # them in order of first use so the written file is byte-for-byte reproducible.
    renames: dict[str, str] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in inits:
                renames.setdefault(name, f"const_{len(renames)}")
                node.input[i] = renames[name]
    for init in graph.initializer:
        init.name = renames[init.name]
    ordered = sorted(graph.initializer, key=lambda t: int(t.name.split("_")[1]))
    ordered = [type(ordered[0]).FromString(t.SerializeToString()) for t in ordered]
    del graph.initializer[:]
    graph.initializer.extend(ordered)
    model.doc_string = (
        f"MediaPipe BlazeFace {variant}-range face detector (mediapipe {MEDIAPIPE_VERSION}, Apache-2.0), "
        "converted with tf2onnx by fer_perception/tools/make_blazeface_onnx.py; dynamic batch."
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))
    print(f"made batch dynamic ({nodes} Reshape nodes, {patched} shape constants patched)")


def verify(tflite_path: Path, onnx_path: Path, side: int = 128) -> None:
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite_path))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    # by the last dimension: the full-range .tflite names its outputs Identity / Identity_1
    outs = {("regressors" if d["shape"][-1] == 16 else "classificators"): d["index"]
            for d in interp.get_output_details()}
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    batch = rng.uniform(-1, 1, (3, side, side, 3)).astype(np.float32)
    reg_b, cls_b = sess.run(["regressors", "classificators"], {"input": batch})
    worst = 0.0
    for i in range(3):
        interp.set_tensor(inp, batch[i : i + 1])
        interp.invoke()
        reg_t = interp.get_tensor(outs["regressors"])
        cls_t = interp.get_tensor(outs["classificators"])
        reg_1, cls_1 = sess.run(["regressors", "classificators"], {"input": batch[i : i + 1]})
        worst = max(worst, float(np.abs(reg_1 - reg_t).max()), float(np.abs(cls_1 - cls_t).max()))
        np.testing.assert_allclose(reg_b[i : i + 1], reg_1, atol=1e-4)
        np.testing.assert_allclose(cls_b[i : i + 1], cls_1, atol=1e-4)
    print(f"ONNX Runtime vs LiteRT max |diff| = {worst:.2e} (regressors up to ~{np.abs(reg_b).max():.0f})")
    if worst > 1e-3:
        raise SystemExit("conversion check failed: ONNX and TFLite outputs differ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="an already downloaded mediapipe 0.10.21 wheel")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="short")
    parser.add_argument("--out-dir", type=Path, default=MODELS_DIR)
    args = parser.parse_args(argv)

    member, expected, stem, side = VARIANTS[args.variant]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tflite_out = args.out_dir / f"{stem}.tflite"
    onnx_out = args.out_dir / f"{stem}.onnx"
    license_out = args.out_dir / "blazeface_LICENSE"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = args.wheel or download_wheel(tmp)
        with zipfile.ZipFile(wheel) as zf:
            tflite_out.write_bytes(zf.read(member))
            license_out.write_bytes(zf.read(LICENSE_MEMBER))
        digest = sha256(tflite_out)
        if digest != expected:
            raise SystemExit(f"{member} has SHA-256 {digest}, expected {expected}")
        print(f"extracted {tflite_out} ({tflite_out.stat().st_size} bytes, sha256 {digest[:16]}...)")
        convert_from = tflite_out
        if args.variant == "full":
            convert_from = tmp / f"{stem}_dense.tflite"
            densify_tflite(tflite_out, convert_from, side)
        subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--tflite", str(convert_from),
             "--output", str(onnx_out), "--opset", "13"],
            check=True,
        )
    if args.variant == "full":
        rename_io(onnx_out)
    make_batch_dynamic(onnx_out, args.variant)
    verify(tflite_out, onnx_out, side)
    print(f"wrote {onnx_out} ({onnx_out.stat().st_size} bytes, sha256 {sha256(onnx_out)[:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
