#!/usr/bin/env python3
"""What test-time augmentation costs: per-call latency of the two shipped expression models.

    .venv/bin/python benchmarks/tta_cost.py --update-doc
    .venv/bin/python benchmarks/tta_cost.py --runs 100            # quick look, prints only
    .venv/bin/python benchmarks/tta_cost.py --baseline OLD.onnx   # also against an older default

The two files hold the same trained ARCH-1: ``arch1_fer2013.onnx`` (the node's default, 2 views:
the face and its mirror) and ``arch1_fer2013_tta12.onnx`` (12 views: also the centre and four
corner 44x44 windows, each mirrored; see docs/MODEL_CARD.md); the view counts in the table are read
from the sidecars. ``--baseline FILE`` times a third file beside them (e.g. a candidate export
such as a 4-view ``fer-export --crop-tta 44 --crop-tta-windows centre`` file; the model issue's
budget is twice the default's time per face) and gives the default's ratio to it. For every backend that runs here
(ONNX Runtime, LiteRT fp32, TensorRT) and 1, 3 and 8 faces per call, ``backend.predict`` is timed
``--runs`` times after ``--warmup`` calls, the two models alternating call by call so that both see
the same machine load. The table gives the median per call and the ratio of the medians; the
accuracy column is the one each file's export measured on PublicTest (its sidecar JSON).
``--update-doc`` writes the table into docs/BENCHMARKS.md (tta_cost markers).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test" / "harness")]
import rosharness as rh  # noqa: E402  (doc blocks, machine load)

DOC = REPO / "docs" / "BENCHMARKS.md"
FACES = (1, 3, 8)
FRAME_BUDGET_MS = 1000.0 / 30


def views(path: Path) -> int | None:
    """How many views a fer-export graph averages (its sidecar's flip/crop TTA), None without one."""
    try:
        side = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    crops = 0 if not side.get("crop_tta") else (1 if side.get("crop_tta_windows") == "centre" else 5)
    return (1 + crops) * (2 if side.get("flip_tta") else 1)


def shipped_models(baseline: Path | None = None) -> dict[str, Path]:
    """label -> file: "default", "tta12" (and "baseline"), each label with its view count."""
    from fer_perception.inference import DEFAULT_MODEL_PATH

    files = {"default": DEFAULT_MODEL_PATH, "tta12": DEFAULT_MODEL_PATH.with_name("arch1_fer2013_tta12.onnx")}
    if baseline is not None:
        files["baseline"] = Path(baseline)
    return {f"{key} ({views(path) or '?'} views)": path for key, path in files.items()}


def backend_configs(threads: int) -> list[tuple[str, str, int | None]]:
    from fer_perception.inference import available_backends

    avail = available_backends()
    configs = []
    if avail["onnxruntime"] is None:
        configs.append(("onnxruntime", "fp32", threads))
    if avail["tflite"] is None:
        configs.append(("tflite", "fp32", threads))
    if avail["tensorrt"] is None:
        configs.append(("tensorrt", "fp16", None))
    return configs


def measure(models: dict[str, Path], configs, runs: int, warmup: int) -> list[dict]:
    from fer_perception.inference import create_backend

    rng = np.random.default_rng(0)
    rows = []
    for name, precision, threads in configs:
        backends = {label: create_backend(name, path, precision=precision, threads=threads)
                    for label, path in models.items()}
        for n in FACES:
            x = rng.integers(0, 256, (n, 48, 48, 1)).astype(np.float32)
            times = {label: np.empty(runs) for label in backends}
            for _ in range(warmup):
                for be in backends.values():
                    be.predict(x)
            for i in range(runs):
                for label, be in backends.items():  # alternate: both models see the same load
                    t0 = time.perf_counter()
                    be.predict(x)
                    times[label][i] = time.perf_counter() - t0
            medians = [float(np.median(t)) * 1e3 for t in times.values()]
            default_ms, tta_ms = medians[:2]
            row = {"backend": name, "precision": precision, "threads": threads or "default", "faces": n,
                   "default_ms": default_ms, "tta12_ms": tta_ms, "ratio": tta_ms / default_ms}
            if len(medians) > 2:
                row.update(baseline_ms=medians[2], default_vs_baseline=default_ms / medians[2])
            rows.append(row)
            print(f"  {name:<12} {precision:<5} faces={n}: default {default_ms:.3f} ms, tta12 {tta_ms:.3f} ms "
                  f"({row['ratio']:.1f}x)" + (f", baseline {medians[2]:.3f} ms" if len(medians) > 2 else ""),
                  flush=True)
    return rows


def accuracy(path: Path) -> float | None:
    try:
        return float(json.loads(path.with_suffix(".json").read_text())["formats"]["onnx"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def markdown(rows, models: dict[str, Path], command: str, load: str) -> str:
    acc = {label: accuracy(path) for label, path in models.items()}
    acc_text = ", ".join(f"{label} `{path.name}` {acc[label]:.2%}" if acc[label] is not None else
                         f"{label} `{path.name}` (no sidecar)" for label, path in models.items())
    lines = [f"Command: `{command}`", "",
             f"PublicTest accuracy (from the export sidecars): {acc_text}.", f"Machine load: {load}", ""]
    base = len(models) > 2
    head = "| backend | precision | threads | faces per call | default, ms per call | tta12, ms per call | tta12 / default |"
    lines += [head + (" baseline, ms per call | default / baseline |" if base else ""),
              "|---|---|---|---|---|---|---|" + ("---|---|" if base else "")]
    for r in rows:
        over = " (over a 30 fps frame)" if r["tta12_ms"] > FRAME_BUDGET_MS else ""
        line = (f"| {r['backend']} | {r['precision']} | {r['threads']} | {r['faces']} | {r['default_ms']:.2f} | "
                f"{r['tta12_ms']:.2f}{over} | {r['ratio']:.1f}x |")
        if base:
            line += f" {r['baseline_ms']:.2f} | {r['default_vs_baseline']:.2f}x |"
        lines.append(line)
    lines += ["", "Medians of alternating calls in one run. The expression model is only part of a frame: "
              "BlazeFace, alignment and the node add the same time for each file (see the sections above)."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of ONNX Runtime / LiteRT (node default: 1)")
    p.add_argument("--baseline", type=Path, help="a third model file to time beside them (e.g. an older default)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--update-doc", action="store_true", help=f"write the table into {DOC.relative_to(REPO)}")
    args = p.parse_args(argv)

    models = shipped_models(args.baseline)
    missing = [str(path) for path in models.values() if not path.is_file()]
    if missing:
        print(f"tta_cost: missing model file(s): {', '.join(missing)}", file=sys.stderr)
        return 2
    load_before = rh.machine_load()
    rows = measure(models, backend_configs(args.threads), args.runs, args.warmup)
    command = ".venv/bin/python benchmarks/tta_cost.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, models, command.strip(), f"{load_before} (at the start)")
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.update_doc:
        rh.update_doc_block(DOC, "tta_cost", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
