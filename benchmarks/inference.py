"""Per-face inference latency of every available backend, Keras as the baseline, and whole frames.

    .venv/bin/python benchmarks/inference.py                       # random-weight ARCH-1
    .venv/bin/python benchmarks/inference.py --keras runs/a1/model.keras
    .venv/bin/python benchmarks/inference.py --runs 300 --no-doc --json out/inference.json

1. Model: ``--keras`` (a trained .keras) or a random-weight ARCH-1 from fer_training.models, exported
   to ONNX / TFLite fp32 / TFLite int8 with fer_training.export, in a subprocess (this process never
   imports TensorFlow, so TF's thread pools cannot disturb the timings).
2. Per-face latency: ``backend.predict`` on batches of 1, 8 and 32 random faces, per backend,
   precision and thread count; ``--warmup`` untimed calls then ``--runs`` timed calls; the table gives
   the median call time divided by the batch size (ms per face).
3. Keras baseline, in another subprocess: ``model.predict(x, verbose=0)`` and the direct call
   ``model(x, training=False)``, same batches, fewer runs (``--keras-runs``).
4. Whole frames: FacePipeline (BlazeFace + alignment + one batched inference) on synthetic 640x480
   frames with 1 and 3 faces pasted from real photos (../shared/media; scikit-image's astronaut
   when absent) on a gradient; the detector must find exactly that many faces or the run aborts.
   Median and p90 of the frame time plus the median of each stage.

Results are printed and written to docs/BENCHMARKS.md between the markers of the section
"Inference and per-frame pipeline" (rerunning replaces only that block).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test" / "harness")]
import rosharness as rh  # noqa: E402  (synthetic frames)
SHARED = Path(os.environ.get("FER_SHARED_DIR", REPO.parent / "shared"))
DOC = REPO / "docs" / "BENCHMARKS.md"
HEADING = "## Inference and per-frame pipeline"
BEGIN = "<!-- BEGIN inference: written by benchmarks/inference.py, edit there -->"
END = "<!-- END inference -->"
BATCHES = (1, 8, 32)
WIDTH, HEIGHT = 640, 480

MAKE_MODEL = textwrap.dedent("""
    import os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pathlib import Path
    import numpy as np, keras
    from fer_training import export as fx
    from fer_training.models import build_model
    from fer_training.train import load_keras_model  # knows the serving layers (flip-TTA, temperature)
    out, keras_path = Path(sys.argv[1]), sys.argv[2]
    if keras_path:
        model = load_keras_model(keras_path)
    else:
        keras.utils.set_random_seed(0)
        model = build_model("arch1")
    model.save(out / "model.keras")
    fx.export_onnx(model, out / "model.onnx")
    fx.export_tflite(model, out / "model_fp32.tflite", "fp32")
    rep = np.random.default_rng(0).integers(0, 256, (128, 48, 48)).astype("uint8")
    fx.export_tflite(model, out / "model_int8.tflite", "int8", rep)
""")

KERAS_BENCH = textwrap.dedent("""
    import json, os, sys, time
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np, keras, tensorflow as tf
    from fer_training.train import load_keras_model  # knows the serving layers (flip-TTA, temperature)
    path, batches, runs, warmup = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    model = load_keras_model(path)
    rng = np.random.default_rng(0)
    res = {"tensorflow": tf.__version__, "keras": keras.__version__,
           "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default"}
    for mode in ("predict", "call"):
        for b in batches:
            x = rng.integers(0, 256, (b, 48, 48, 1)).astype("float32")
            f = (lambda: model.predict(x, verbose=0)) if mode == "predict" else (lambda: model(x, training=False))
            for _ in range(warmup):
                f()
            t = []
            for _ in range(runs):
                t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)
            res[f"{mode}_{b}"] = float(np.median(t)) * 1e3
            res[f"{mode}_{b}_min"] = float(np.min(t)) * 1e3
    print("JSON" + json.dumps(res))
""")


def timed(fn, runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    return times * 1e3


def make_models(workdir: Path, keras_path: str | None) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    proc = subprocess.run([sys.executable, "-c", MAKE_MODEL, str(workdir), keras_path or ""],
                          capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"making the model failed:\n{proc.stderr[-4000:]}")
    return {"keras": workdir / "model.keras", "onnx": workdir / "model.onnx"}


def keras_baseline(keras_path: Path, runs: int, warmup: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", KERAS_BENCH, str(keras_path), json.dumps(list(BATCHES)),
                           str(runs), str(warmup)], capture_output=True, text=True, cwd=REPO)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("JSON")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"Keras baseline failed:\n{proc.stderr[-4000:]}")
    return json.loads(line[4:])


def backend_configs(threads_list: list[int]) -> list[tuple[str, str, int | None, dict]]:
    from fer_perception.inference import available_backends

    avail = available_backends()
    configs = []
    if avail["onnxruntime"] is None:
        configs += [("onnxruntime", "fp32", t, {}) for t in threads_list]
        configs += [("onnxruntime", "fp32", t, {"spinning": True}) for t in threads_list if t > 1]
    if avail["tflite"] is None:
        configs += [("tflite", "fp32", t, {}) for t in threads_list] + [("tflite", "int8", t, {}) for t in threads_list]
    if avail["tensorrt"] is None:
        configs += [("tensorrt", p, None, {}) for p in ("fp32", "fp16")]
    return configs


def per_face(onnx_path: Path, configs, runs: int, warmup: int) -> list[dict]:
    from fer_perception.inference import create_backend

    rng = np.random.default_rng(0)
    rows = []
    for name, precision, threads, extra in configs:
        be = create_backend(name, onnx_path, precision=precision, threads=threads, max_batch=max(BATCHES), **extra)
        note = ", spinning" if extra.get("spinning") else ""
        row = {"backend": name + note, "precision": precision, "threads": threads if threads else "default",
               "model_file": be.model_path.name}
        for b in BATCHES:
            x = rng.integers(0, 256, (b, 48, 48, 1)).astype(np.float32)
            t = timed(lambda: be.predict(x), runs, warmup)
            row[f"ms_per_face_b{b}"] = float(np.median(t)) / b
            row[f"min_ms_per_face_b{b}"] = float(np.min(t)) / b
        rows.append(row)
        print(f"  {row['backend']:<22} {precision:<5} threads={row['threads']!s:<8} " + "  ".join(
            f"b{b}: {row[f'ms_per_face_b{b}']:.3f} (min {row[f'min_ms_per_face_b{b}']:.3f}) ms/face"
            for b in BATCHES), flush=True)
    return rows


# ------------------------------------------------------------------------------------------ frames


def frames(onnx_path: Path, threads_list: list[int], runs: int, warmup: int, haar_runs: int,
           int8_path: Path | None = None) -> list[dict]:
    from fer_perception.pipeline import FacePipeline

    crops = rh.face_crops()
    rows = []
    # ONNX Runtime and LiteRT fp32 (what `auto` picks on a CPU with LiteRT), then LiteRT int8.
    cases = [("blazeface", t, (1, 3), runs, warmup, onnx_path, "onnxruntime", "fp32") for t in threads_list]
    cases += [("blazeface", t, (1, 3), runs, warmup, onnx_path, "tflite", "fp32") for t in threads_list]
    if int8_path is not None:
        cases += [("blazeface", t, (1, 3), runs, warmup, int8_path, "tflite", "int8") for t in threads_list]
    if haar_runs:
        cases.append(("haar", 1, (1,), haar_runs, 3, onnx_path, "onnxruntime", "fp32"))
    cv_threads = cv2.getNumThreads()
    for detector, threads, counts, n_runs, n_warm, model_path, backend, precision in cases:
        pipe = FacePipeline.from_options(model_path, backend=backend, detector=detector, threads=threads,
                                         precision=precision)
        cv2.setNumThreads(threads if detector == "haar" else cv_threads)
        for n in counts:
            frame = rh.compose_frame(n, crops, WIDTH, HEIGHT)
            found = len(pipe.process(frame))
            if found != n:
                raise SystemExit(f"synthetic frame with {n} faces: the pipeline found {found}")
            stages = {"detect_ms": [], "align_ms": [], "infer_ms": []}

            def once():
                pipe.process(frame)
                t = pipe.last_timings
                for k in stages:
                    stages[k].append(getattr(t, k))

            total = timed(once, n_runs, n_warm)
            det_name = f"blazeface/{pipe.detector.backend}" if detector == "blazeface" else detector
            row = {"faces": n, "threads": threads, "backend": f"{pipe.backend.name} {precision}", "detector": det_name,
                   "frame_ms_p50": float(np.median(total)), "frame_ms_p90": float(np.percentile(total, 90)),
                   "frame_ms_min": float(np.min(total))}
            for k, v in stages.items():
                row[k + "_p50"] = float(np.median(v[n_warm:]))
            rows.append(row)
            print(f"  {detector} {n} face(s) threads={threads}: frame p50 {row['frame_ms_p50']:.2f} ms, p90 "
                  f"{row['frame_ms_p90']:.2f} ms (detect {row['detect_ms_p50']:.2f} / align "
                  f"{row['align_ms_p50']:.2f} / infer {row['infer_ms_p50']:.2f})", flush=True)
    cv2.setNumThreads(cv_threads)
    return rows


# ------------------------------------------------------------------------------------------ report


def machine() -> dict:
    import onnxruntime

    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import ai_edge_litert

        litert = getattr(ai_edge_litert, "__version__", "present")
    except ImportError:
        litert = "absent"
    return {"cpu": cpu, "cores": cores, "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "ai_edge_litert": litert, "opencv": cv2.__version__, "numpy": np.__version__}


def markdown(info: dict, face_rows, keras, frame_rows, command: str, load: tuple) -> str:
    out = [f"Command: `{command}`", "",
           f"Machine: {info['cpu']}, {info['cores']} cores available to the process; Python {info['python']}, "
           f"onnxruntime {info['onnxruntime']}, ai-edge-litert {info['ai_edge_litert']}, OpenCV {info['opencv']}, "
           f"NumPy {info['numpy']}; model: {info['model']}.",
           f"Load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f} "
           f"({'a busy 1-minute average: other jobs ran during or just before the run, expect noisy numbers' if max(load) > 0.5 * info['cores'] else 'quiet machine'}).",
           f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Runs: {info['runs']} timed after "
           f"{info['warmup']} warm-up calls (medians).", "",
           "### Per-face latency", "",
           "ms per face = call time / batch size: median (minimum) over the timed calls. The minimum is",
           "the best case, close to what an otherwise idle machine gives when other jobs share the cores.", "",
           "| backend | precision | intra-op threads | batch 1 | batch 8 | batch 32 |",
           "|---|---|---|---|---|---|"]
    for r in face_rows:
        out.append(f"| {r['backend']} | {r['precision']} | {r['threads']} | " + " | ".join(
            f"{r[f'ms_per_face_b{b}']:.3f} ({r[f'min_ms_per_face_b{b}']:.3f})" for b in BATCHES) + " |")
    if keras:
        for mode, label in (("predict", "Keras `model.predict(x)`"), ("call", "Keras `model(x, training=False)`")):
            out.append(f"| {label} | fp32 | TF default ({keras['intra_op_threads']}) | " + " | ".join(
                f"{keras[f'{mode}_{b}'] / b:.3f} ({keras[f'{mode}_{b}_min'] / b:.3f})" for b in BATCHES) + " |")
        out.append("")
        out.append(f"Keras baseline: TensorFlow {keras['tensorflow']}, Keras {keras['keras']}, "
                   f"{info['keras_runs']} timed runs per cell.")
    out += ["", "### Whole 640x480 frame: detection + alignment + one batched inference", "",
            "Synthetic frames: face regions (1.7 x the BlazeFace box) from obama.jpg / two_people.jpg resized to",
            "190 px (1 face) or 170 px (3 faces) on a gradient. Both sessions (detector, classifier) use the",
            "given intra-op threads, ONNX Runtime without spinning. The Haar row uses cv2.setNumThreads(1).", "",
            "| faces | threads (detector and model) | backend | frame p50 ms | frame p90 ms | frame min ms | detect p50 | align p50 | infer p50 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in frame_rows:
        out.append(f"| {r['faces']} | {r['threads'] or 'default'} | {r['detector']} + {r['backend']} | "
                   f"{r['frame_ms_p50']:.2f} | {r['frame_ms_p90']:.2f} | {r['frame_ms_min']:.2f} | "
                   f"{r['detect_ms_p50']:.2f} | {r['align_ms_p50']:.2f} | {r['infer_ms_p50']:.2f} |")
    out += ["", "Against the goals (<= 0.3 ms per face batched, <= 3 ms per 640x480 frame with one face, 2 cores):", ""]
    batched = [(r[f"ms_per_face_b{b}"], r[f"min_ms_per_face_b{b}"], b, r) for r in face_rows for b in BATCHES if b > 1]
    for label, rows in (("fp32", [x for x in batched if x[3]["precision"] == "fp32"]), ("any precision", batched)):
        if rows:
            p50 = min(rows, key=lambda x: x[0])
            best = min(rows, key=lambda x: x[1])
            out.append(f"* per face, batched, {label}: best median {p50[0]:.3f} ms ({p50[3]['backend']} {p50[3]['precision']}, "
                       f"{p50[3]['threads']} threads, batch {p50[2]}); best minimum {best[1]:.3f} ms "
                       f"({best[3]['backend']} {best[3]['precision']}, {best[3]['threads']} threads, batch {best[2]}) -> "
                       f"{'met' if p50[0] <= 0.3 else ('met in the best case only' if best[1] <= 0.3 else 'NOT met')}")
    one = [r for r in frame_rows if r["faces"] == 1 and r["detector"].startswith("blazeface")]
    if one:
        r = min(one, key=lambda r: r["frame_ms_p50"])
        m = min(one, key=lambda r: r["frame_ms_min"])
        out.append(f"* one-face frame: best median {r['frame_ms_p50']:.2f} ms ({r['backend']}, {r['threads']} threads, p90 "
                   f"{r['frame_ms_p90']:.2f} ms); best minimum {m['frame_ms_min']:.2f} ms -> "
                   f"{'met at the median' if r['frame_ms_p50'] <= 3 else ('met in the best case only' if m['frame_ms_min'] <= 3 else 'NOT met')}")
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keras", help="a trained .keras model (default: random-weight ARCH-1)")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--keras-runs", type=int, default=50)
    parser.add_argument("--frame-runs", type=int, default=300)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts to try")
    parser.add_argument("--haar-runs", type=int, default=30, help="timed frames with the Haar detector (0: skip)")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python", "benchmarks/inference.py", *map(shlex.quote, argv if argv is not None else sys.argv[1:])])

    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        print("exporting the model (subprocess) ...", flush=True)
        paths = make_models(Path(tmp), args.keras)
        info = machine()
        info.update(model=f"{'trained ' + Path(args.keras).name if args.keras else 'random-weight ARCH-1'} "
                    "(ONNX, TFLite fp32/int8 via fer_training.export)",
                    runs=args.runs, warmup=args.warmup, keras_runs=args.keras_runs)
        print("per-face latency:", flush=True)
        face_rows = per_face(paths["onnx"], backend_configs(args.threads), args.runs, args.warmup)
        print("whole frames:", flush=True)
        frame_rows = frames(paths["onnx"], args.threads, args.frame_runs, args.warmup, args.haar_runs,
                            int8_path=paths["onnx"].with_name("model_int8.tflite"))
        keras = None
        if not args.no_keras:
            print("Keras baseline (subprocess) ...", flush=True)
            keras = keras_baseline(paths["keras"], args.keras_runs, 5)
            print("  " + ", ".join(f"{k}: {v:.2f} ms" for k, v in keras.items()
                                   if k.startswith(("predict", "call")) and not k.endswith("_min")))
    load1 = os.getloadavg()[0]
    section = markdown(info, face_rows, keras, frame_rows, command, (load0, load1))
    print(section)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "per_face": face_rows, "keras": keras,
                                         "frames": frame_rows, "load": [load0, load1]}, indent=2))
    if not args.no_doc:
        rh.replace_doc_block(DOC, BEGIN, END, section, heading=HEADING)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
