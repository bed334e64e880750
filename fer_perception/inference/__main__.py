"""Self-test of an install: ``python -m fer_perception.inference --check [--model PATH]``.

Prints the versions, which backends can run here (and why not), then runs BlazeFace on
scikit-image's astronaut photo and the emotion model on her aligned face through every available
backend, comparing their outputs. Exit status 0 when the default backend, the detector and every
backend asked for with ``--backend`` work, else 1.
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
    for name in dict.fromkeys(wanted):
        try:
            be = create_backend(name, model_path, precision=precision)
            probs = be.predict(batch)[0]
            ms = _median_ms(lambda: be.predict(batch))
        except FerError as exc:
            out(f"  {name:<12} FAILED: {type(exc).__name__}: {exc}")
            if name in backends or name == "auto":
                ok = False
            continue
        results[name] = probs
        top = int(np.argmax(probs))
        out(f"  {name:<12} ({be.name}, {be.precision}) {be.labels[top]} {probs[top]:.3f}, {ms:.2f} ms at batch 1 (median of 10)")
    if len(results) > 1:
        ref_name, ref = next(iter(results.items()))
        for name, probs in results.items():
            if name != ref_name:
                out(f"  max |p({name}) - p({ref_name})| = {np.abs(probs - ref).max():.2e}")
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
