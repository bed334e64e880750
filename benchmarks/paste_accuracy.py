"""End-to-end vs direct accuracy: labelled faces pasted into real frames and run through the whole
pipeline (detect -> align -> classify), against classifying the same 48 x 48 faces directly.

    .venv/bin/python benchmarks/paste_accuracy.py                          # CK+48 and FER2013 PublicTest
    .venv/bin/python benchmarks/paste_accuracy.py --limit 300 --sizes 64 96 192 --no-doc

Each face (CK+48 without contempt, its labels mapped onto the model's; FER2013 PublicTest) is
upscaled from 48 px to ``size`` px with ``--interpolation`` (Lanczos by default), turned by a uniform
in-plane angle in +-``--max-angle`` degrees and pasted (a square, its corners after turning filled by
the background) into a real 640 x 480 frame (benchmarks/face_scenes.py backgrounds) at a random
position, ``--repeats`` times with different positions and angles. The pipeline is the node's
defaults (config/fer.yaml) except that the detector scans every view on every call
(``detector_scan_frames`` = 1: one still frame per face); the model is the shipped one on ONNX
Runtime. Per data set and size: how many faces the detector found (a detection whose box overlaps
the pasted square with IoU >= 0.3), and on those found, end-to-end accuracy, direct accuracy, and
their paired difference with a 95 % interval. The interval treats the face as the unit (a
cluster-robust standard error over faces): a face placed ``--repeats`` times is one face seen again,
not ``--repeats`` independent samples, so repeats narrow the interval only as far as the placements
of one face disagree with each other.

Long runs split by data set (or by ``--sizes``) and merge: ``--sets ckplus48 --json a.json`` and
``--sets fer2013_public_test --json b.json`` (in parallel, one core each), then ``--from-json a.json
b.json --command "..."`` writes the block.

Results go to docs/BENCHMARKS.md between the markers of "End-to-end vs direct accuracy".
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "test" / "harness"))

import face_scenes as fs  # noqa: E402

DOC = REPO / "docs" / "BENCHMARKS.md"
BEGIN = "<!-- BEGIN paste_accuracy: written by benchmarks/paste_accuracy.py, edit there -->"
END = "<!-- END paste_accuracy -->"
HEADING = "## End-to-end vs direct accuracy"
DATA = fs.SHARED / "data"
#: CK+48 label -> the FER2013 model's label (contempt has none and is left out)
CK_TO_MODEL = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy", "sadness": "sad",
               "surprise": "surprise"}
INTERPOLATIONS = {"lanczos": cv2.INTER_LANCZOS4, "cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}


def load_set(name: str, limit: int | None, seed: int) -> tuple[np.ndarray, list[str]]:
    """(N x 48 x 48 uint8 faces, their labels in the model's names)."""
    if name == "ckplus48":
        with np.load(DATA / "ckplus48.npz") as z:
            names = [str(z["label_names"][l]) for l in z["labels"]]
            keep = [i for i, n in enumerate(names) if n in CK_TO_MODEL]
            images, labels = z["images"][keep], [CK_TO_MODEL[names[i]] for i in keep]
    elif name == "fer2013_public_test":
        with np.load(DATA / "fer2013.npz") as z:
            keep = np.flatnonzero(z["split"] == "public_test")
            images, labels = z["images"][keep], [str(z["label_names"][l]) for l in z["labels"][keep]]
    else:
        raise ValueError(f"unknown data set {name!r}")
    if limit and limit < len(images):
        pick = np.sort(np.random.default_rng(seed).choice(len(images), limit, replace=False))
        images, labels = images[pick], [labels[i] for i in pick]
    return images, labels


def paste_square(frame: np.ndarray, face: np.ndarray, size: int, centre, angle: float, interpolation: int):
    """Paste the grey 48 x 48 ``face`` upscaled to ``size`` and turned by ``angle`` degrees into the BGR
    ``frame`` (in place) centred at ``centre``. Returns the pasted square's upright box."""
    big = cv2.resize(face, (size, size), interpolation=interpolation)
    cx, cy = centre
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    m[0, 2] += cx - size / 2
    m[1, 2] += cy - size / 2
    m[:, 2] += 0.5 * m[:, :2].sum(axis=1) - 0.5  # continuous -> pixel-index coordinates
    h, w = frame.shape[:2]
    warped = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpAffine(np.full((size, size), 255, np.uint8), m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)[..., None] / 255.0
    frame[:] = (warped[..., None] * mask + frame * (1 - mask) + 0.5).astype(np.uint8)
    return (cx - size / 2, cy - size / 2, float(size), float(size))


def build_pipeline(threads: int = 1):
    from fer_perception.params import defaults
    from fer_perception.perception import NODE_KEY, detector_options_from_params
    from fer_perception.pipeline import DEFAULT_MODEL_PATH, FacePipeline

    options = detector_options_from_params(defaults(NODE_KEY))
    options.update(scan_frames=1, backend="onnxruntime")
    return FacePipeline.from_options(DEFAULT_MODEL_PATH, backend="onnxruntime", threads=threads, min_face_size=0,
                                     detector_options=options), options


def measure(pipeline, images, labels, sizes, repeats: int, max_angle: float, interpolation: int, seed: int,
            backgrounds, frame_size=(640, 480)) -> list[dict]:
    from fer_perception.preprocessing import to_model_input

    model_labels = list(pipeline.labels)
    direct = pipeline.backend.predict(to_model_input(images)).argmax(1)
    direct_ok = np.array([model_labels[p] == l for p, l in zip(direct, labels)])
    rows = []
    width, height = frame_size
    for size in sizes:
        rng = np.random.default_rng(seed + size)
        found_ok, found_direct, agree, face_of, missed, n = [], [], [], [], 0, 0
        for rep in range(repeats):
            for i, face in enumerate(images):
                frame = backgrounds[(i + rep) % len(backgrounds)].copy()
                half = size * 0.75  # a turned square's reach
                centre = (float(rng.uniform(half, width - half)), float(rng.uniform(half, height - half)))
                box = paste_square(frame, face, size, centre, float(rng.uniform(-max_angle, max_angle)), interpolation)
                n += 1
                results = [r for r in pipeline.process(frame) if fs.box_iou(r.box, box) >= 0.3]
                if not results:
                    missed += 1
                    continue
                best = max(results, key=lambda r: fs.box_iou(r.box, box))
                pred = int(np.argmax(best.probabilities))
                found_ok.append(model_labels[pred] == labels[i])
                found_direct.append(bool(direct_ok[i]))
                agree.append(pred == direct[i])
                face_of.append(i)
        e2e, dir_ = np.array(found_ok, float), np.array(found_direct, float)
        diff = e2e - dir_
        half_ci = 1.96 * clustered_se(diff, np.array(face_of, int))
        rows.append({"size": size, "placed": n, "found": n - missed, "e2e": float(e2e.mean()) if len(e2e) else float("nan"),
                     "direct": float(dir_.mean()) if len(dir_) else float("nan"),
                     "diff": float(diff.mean()) if len(diff) else float("nan"), "diff_ci": half_ci,
                     "agreement": float(np.mean(agree)) if agree else float("nan"),
                     "direct_all": float(direct_ok.mean())})
    return rows


def clustered_se(values: np.ndarray, cluster: np.ndarray) -> float:
    """Standard error of ``values.mean()`` with ``cluster`` (here: the face) as the sampling unit
    (the ratio estimator's cluster-robust variance, k / (k - 1) small-sample factor)."""
    if len(values) < 2:
        return float("nan")
    ids, inverse = np.unique(cluster, return_inverse=True)
    k = len(ids)
    if k < 2:
        return float("nan")
    mean = values.mean()
    sums = np.bincount(inverse, weights=values, minlength=k)
    counts = np.bincount(inverse, minlength=k)
    residual = sums - mean * counts
    return float(math.sqrt(k / (k - 1) * np.sum(residual ** 2)) / len(values))


def markdown(results: dict[str, list[dict]], command: str, options: dict, args) -> str:
    repeats = args.repeats if isinstance(args.repeats, dict) else {name: args.repeats for name in results}
    placements = ", ".join(f"{n} ({name})" for name, n in repeats.items()) if len(set(repeats.values())) > 1 \
        else str(next(iter(repeats.values()), 1))
    out = [f"Command: `{command}`", "",
           f"Faces upscaled with {args.interpolation}, turned by up to +-{args.max_angle:g} deg, pasted into real "
           f"640x480 frames, {placements} placement(s) each; detector = the node defaults with every view on every "
           f"call: `{options}`; shipped model, ONNX Runtime. Accuracy on the faces the detector found; "
           "difference = end-to-end - direct on those same faces (95 % interval).", "",
           "| data set | face px | placed | found % | end-to-end % | direct % | difference (pts, 95 % CI) | same label as direct % |",
           "|---|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        for r in rows:
            out.append(f"| {name} | {r['size']} | {r['placed']} | {100 * r['found'] / max(r['placed'], 1):.1f} | "
                       f"{100 * r['e2e']:.1f} | {100 * r['direct']:.1f} | {100 * r['diff']:+.1f} "
                       f"({100 * (r['diff'] - r['diff_ci']):+.1f} .. {100 * (r['diff'] + r['diff_ci']):+.1f}) | "
                       f"{100 * r['agreement']:.1f} |")
    out += ["", "Goal: for faces >= 96 px, end-to-end within 1 point of direct (interval included):", ""]
    for name, rows in results.items():
        big = [r for r in rows if r["size"] >= 96]
        if big:
            worst = min(big, key=lambda r: r["diff"] - r["diff_ci"])
            ok = worst["diff"] - worst["diff_ci"] >= -0.01
            out.append(f"* {name}: worst lower bound {100 * (worst['diff'] - worst['diff_ci']):+.1f} pts at {worst['size']} px "
                       f"-> {'met' if ok else 'NOT met'}")
    return "\n".join(out)


def merge_runs(paths: list[Path], args) -> tuple[dict[str, list[dict]], dict]:
    """The rows of several ``--json`` runs (split by set or by size) as one result, and the first
    run's detector options; ``args`` takes the runs' rendering settings (placements per set)."""
    results, options, repeats = {}, None, {}
    for path in paths:
        run = json.loads(path.read_text())
        for name, rows in run["results"].items():
            results[name] = sorted(results.get(name, []) + rows, key=lambda r: r["size"])
            repeats[name] = run["args"]["repeats"]
        options = options or run["options"]
        for key in ("max_angle", "interpolation"):
            setattr(args, key, run["args"][key])
    args.repeats = repeats
    return results, options


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="*", default=["ckplus48", "fer2013_public_test"])
    parser.add_argument("--sizes", nargs="*", type=int, default=[48, 64, 96, 144, 192])
    parser.add_argument("--limit", type=int, default=600, help="faces per data set (random subset; 0 = all)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-angle", type=float, default=15.0)
    parser.add_argument("--interpolation", choices=sorted(INTERPOLATIONS), default="lanczos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows (and the run's options) to this file")
    parser.add_argument("--from-json", type=Path, nargs="+", help="render the block from --json runs (merged)")
    parser.add_argument("--command", help="with --from-json: the command(s) that made the runs")
    args = parser.parse_args(argv)

    if args.from_json:
        results, options = merge_runs(args.from_json, args)
        command = args.command or "(see the --json runs)"
    else:
        pipeline, options = build_pipeline()
        backgrounds = fs.load_backgrounds((640, 480), count=8)
        results = {}
        for name in args.sets:
            images, labels = load_set(name, args.limit or None, args.seed)
            results[name] = measure(pipeline, images, labels, args.sizes, args.repeats, args.max_angle,
                                    INTERPOLATIONS[args.interpolation], args.seed, backgrounds)
            for r in results[name]:
                print(name, r, flush=True)
        command = "python benchmarks/paste_accuracy.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        command = command.strip()
        if args.json:
            run_args = {k: getattr(args, k) for k in ("repeats", "max_angle", "interpolation", "limit", "sizes", "seed")}
            args.json.write_text(json.dumps({"results": results, "options": options, "command": command,
                                             "args": run_args}, indent=1, default=str))
    text = markdown(results, command, options, args)
    print(text)
    if not args.no_doc:
        import rosharness as rh

        rh.replace_doc_block(DOC, BEGIN, END, text, heading=HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
