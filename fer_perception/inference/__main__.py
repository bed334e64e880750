"""Self-test of an install: ``python -m fer_perception.inference --check [--model PATH] [--backend B]``.

Prints the versions (TensorRT, CUDA runtime and driver, the GPU and board), which backends can run
here (and why not), then runs BlazeFace on scikit-image's astronaut photo and the emotion model on
her aligned face through every available backend (building or loading TensorRT engines), checks
each against ONNX Runtime (fp32: 1e-4, fp16: 1e-2, int8: top-1) and times batches of 1, 3 and 8
faces. Exit status 0 when the default backend, the detector and every backend asked for with
``--backend`` work and agree, else 1. On a Jetson: ``--backend tensorrt`` is the first command to run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from fer_perception.errors import FerError
from fer_perception.inference import (
    DEFAULT_MODEL_PATH,
    available_backends,
    create_backend,
    resolve_backend_name,
)
from fer_perception.inference.runtimes import onnxruntime_providers


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is "absent" here
        return f"absent ({type(exc).__name__})"
    return str(getattr(mod, "__version__", "present"))


def _median_ms(fn, runs: int = 10) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def _test_image() -> np.ndarray:
    import cv2
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def check(model_path: Path, backends: list[str], precision: str, out=print) -> int:
    from fer_perception.detection import create_detector
    from fer_perception.preprocessing import align_face, to_model_input

    ok = True
    out(f"python {platform.python_version()} on {platform.machine()} ({platform.platform()})")
    for mod in ("numpy", "cv2", "onnxruntime", "ai_edge_litert", "tensorrt", "cuda"):
        out(f"  {mod:<15} {_version(mod)}")
    out(f"  onnxruntime providers: {', '.join(onnxruntime_providers()) or 'none'}")
    from fer_perception.inference.tensorrt_runtime import cuda_versions, gpu_info

    versions = cuda_versions()
    if versions is not None:
        out(f"  CUDA runtime {versions['runtime']}, driver {versions['driver']}")
        try:
            out(f"  GPU {gpu_info()}")
        except FerError as exc:
            out(f"  GPU: {exc}")
    status = available_backends()
    out("backends:")
    for name, reason in status.items():
        out(f"  {name:<12} {'available' if reason is None else 'unavailable: ' + reason}")
    out(f"  auto         -> {resolve_backend_name('auto', model_path, precision)} (for {Path(model_path).name}, {precision})")

    image = _test_image()
    det_backends = [n for n, r in status.items() if r is None]
    faces = None
    out("detector (BlazeFace, astronaut 512x512):")
    for name in det_backends:
        try:
            det = create_detector("blazeface", backend=name)
            found = det.detect(image)
            ms = _median_ms(lambda: det.detect(image))
            out(f"  {name:<12} {len(found)} face(s), {ms:.2f} ms (median of 10)")
            if len(found) != 1:
                ok = False
            elif faces is None:
                faces = found
        except FerError as exc:
            out(f"  {name:<12} FAILED: {exc}")
            ok = False
    if not faces:
        out("no face found: the detector does not work here")
        return 1
    crop = align_face(image, faces[0].box, faces[0].keypoints)
    batch = to_model_input([crop])

    out(f"emotion model {model_path}:")
    if not Path(model_path).is_file():
        out(f"  not found; pass --model PATH (the trained model belongs at {DEFAULT_MODEL_PATH})")
        return 1
    results = {}
    wanted = backends or ["auto"] + [n for n in ("onnxruntime", "tensorrt", "tflite") if status.get(n) is None]
    tolerance = {"fp32": 1e-4, "fp16": 1e-2}
    batches = {n: np.repeat(batch, n, axis=0) for n in (1, 3, 8)}
    for name in dict.fromkeys(["onnxruntime", *wanted]):
        try:
            be = create_backend(name, model_path, precision=precision if name != "onnxruntime" else "fp32")
            probs = be.predict(batch)[0]
            times = {n: _median_ms(lambda x=x: be.predict(x)) for n, x in batches.items()}
        except FerError as exc:
            out(f"  {name:<12} FAILED: {type(exc).__name__}: {exc}")
            if name in backends or name == "auto":
                ok = False
            continue
        results[name] = (be, probs)
        top = int(np.argmax(probs))
        timing = ", ".join(f"{ms:.2f} ms at batch {n}" for n, ms in times.items())
        engine = ""
        if be.name == "tensorrt":
            runner = be.runner
            engine = f"; engine {runner.engine_path.name} ({'built now' if runner.engine_built else 'loaded from the cache'})"
        out(f"  {name:<12} ({be.name}, {be.precision}) {be.labels[top]} {probs[top]:.3f}; {timing} (medians of 10){engine}")
    if "onnxruntime" in results:
        _, ref = results["onnxruntime"]
        for name, (be, probs) in results.items():
            if name == "onnxruntime":
                continue
            diff = float(np.abs(probs - ref).max())
            limit = tolerance.get(be.precision)
            agree = diff <= limit if limit is not None else int(np.argmax(probs)) == int(np.argmax(ref))
            out(f"  max |p({name}) - p(onnxruntime)| = {diff:.2e} "
                f"({'within' if agree else 'OUTSIDE'} {limit if limit is not None else 'top-1 agreement'})")
            if not agree and (name in backends or name == "auto"):
                ok = False
    out("OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_perception.inference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="run the self-test (the default action)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--backend", action="append", default=[], help="backend(s) that must work (repeatable)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    parser.add_argument("--json", action="store_true", help="print available_backends() as JSON and exit")
    args = parser.parse_args(argv)
    if args.json:
        print(json.dumps(available_backends(), indent=2))
        return 0
    return check(args.model, args.backend, args.precision)


if __name__ == "__main__":
    sys.exit(main())
