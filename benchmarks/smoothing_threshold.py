"""How fer_node's smoothing shifts the confidence threshold: the risk-coverage table of single faces
against that of the smoothed, hysteresis-held label of short synthetic "live" clips of still faces.

    .venv/bin/python benchmarks/smoothing_threshold.py --update-doc     # every PublicTest and CK+48 face
    .venv/bin/python benchmarks/smoothing_threshold.py --limit 300      # a random subset, print only
    .venv/bin/python benchmarks/smoothing_threshold.py --model CANDIDATE.onnx   # a candidate export, print only

A clip is what a tracked, still face looks like to the node frame after frame: each labelled 48 x 48
face (FER2013 PublicTest; CK+48 without contempt, its labels mapped onto the model's) is upscaled
once to ``--face-px`` pixels (Lanczos) and padded by reflection (context for the re-crops), and each
of ``--frames`` frames re-crops it with fer_perception.preprocessing (``align_detection``, the node's
call, BlazeFace short-range template) from eye keypoints jittered independently per frame: the eye
midpoint shifted by up to +-``--shift`` pixels of the 48-px crop in x and y, the eye distance scaled
by up to +-``--scale``, the eye line turned by up to +-``--angle`` degrees (uniform), on a frame with
Gaussian sensor noise of ``--noise`` grey levels. The crops go through the shipped model
(fer_perception.inference on ONNX Runtime, ``to_model_input``: the node's path) and then, clip by clip,
through fer_perception.smoothing.LabelSmoother with fer_node's defaults from config/fer.yaml
(``SmoothingConfig.from_yaml_defaults``), once per threshold of the table.

Columns: "face" is the model card's per-face table (each face classified once as stored); "frame" a
single jittered frame (every frame of every clip counted); "smoothed @k" the label the node publishes
k frames into the clip: kept = not ``unknown`` at that threshold, right = the held class is the face's
label. The auto rule is fer-export's (fer_training.evaluate.suggested_threshold: the lowest threshold
whose kept faces reach TARGET_KEPT_ACCURACY). Not modelled: motion, expression changes, lighting
changes, detector misses, and correlated (slowly drifting) landmark error - jitter here is independent
frame to frame, which is the case smoothing helps most.

``--update-doc`` writes the result between the smoothing_threshold markers of docs/BENCHMARKS.md and
docs/MODEL_CARD.md. ``--model`` measures another file the same way (the lever table of docs/training.md
uses it to check that a candidate's gain on stored faces holds on re-cropped, smoothed ones).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "test" / "harness"))

from fer_training.evaluate import (RISK_COVERAGE_THRESHOLDS, TARGET_KEPT_ACCURACY, risk_coverage,  # noqa: E402
                                   suggested_threshold)

DOCS = (REPO / "docs" / "BENCHMARKS.md", REPO / "docs" / "MODEL_CARD.md")
BEGIN = "<!-- BEGIN smoothing_threshold: written by benchmarks/smoothing_threshold.py, edit there -->"
END = "<!-- END smoothing_threshold -->"
HEADING = "## Smoothing and the confidence threshold"
SETS = ("fer2013_public_test", "ckplus48")
AT_FRAMES = (5, 15)


@dataclass(frozen=True)
class ClipSpec:
    frames: int = 15
    face_px: int = 96  # the face's size in the camera frame
    shift: float = 0.5  # eye-midpoint jitter, pixels of the 48-px crop (x and y)
    scale: float = 0.05  # eye-distance jitter, fraction
    angle: float = 5.0  # eye-line jitter, degrees
    noise: float = 3.0  # Gaussian sensor noise, grey levels

    def describe(self) -> str:
        return (f"{self.frames} frames per clip, face {self.face_px} px, jitter per frame: shift +-{self.shift:g} px "
                f"(48-px crop), scale +-{100 * self.scale:g} %, rotation +-{self.angle:g} deg, sensor noise "
                f"sigma {self.noise:g} grey levels")


def load_set(name: str, limit: int | None, seed: int):
    """(N x 48 x 48 uint8 faces, their labels in the model's names): benchmarks/paste_accuracy.py's sets."""
    import paste_accuracy

    return paste_accuracy.load_set(name, limit, seed)


def clip_crops(face: np.ndarray, rng: np.random.Generator, spec: ClipSpec) -> np.ndarray:
    """``spec.frames`` x 48 x 48 uint8 crops of one still face, re-cropped with per-frame jitter."""
    from fer_perception.detection import Detection
    from fer_perception.preprocessing import FACE_SIZE, TEMPLATES, align_detection

    size = spec.face_px
    k = size / FACE_SIZE
    pad = size // 4
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_LANCZOS4)
    src = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REFLECT_101).astype(np.float32)
    # Eyes where an un-jittered re-crop reproduces the face: the template scaled to the face's size.
    eyes = np.array(TEMPLATES["short"], np.float64) * k + pad
    mid = eyes.mean(axis=0)
    box = (float(pad), float(pad), float(size), float(size))
    out = np.empty((spec.frames, FACE_SIZE, FACE_SIZE), np.uint8)
    for f in range(spec.frames):
        theta = math.radians(rng.uniform(-spec.angle, spec.angle))
        s = 1.0 + rng.uniform(-spec.scale, spec.scale)
        rot = s * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        shift = rng.uniform(-spec.shift, spec.shift, 2) * k
        keypoints = (eyes - mid) @ rot.T + mid + shift
        frame = src + rng.normal(0.0, spec.noise, src.shape) if spec.noise > 0 else src
        frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        out[f] = align_detection(frame, Detection(box=box, score=1.0, keypoints=keypoints, model="short"))
    return out


def build_backend(backend: str = "onnxruntime", threads: int = 1, model=None):
    from fer_perception.inference import DEFAULT_MODEL_PATH, create_backend

    return create_backend(backend, model or DEFAULT_MODEL_PATH, threads=threads)


def classify(backend, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    """The node's inference path: to_model_input -> backend.predict, in batches."""
    from fer_perception.preprocessing import to_model_input

    flat = crops.reshape(-1, *crops.shape[-2:])
    probs = [backend.predict(to_model_input(flat[i:i + batch])) for i in range(0, len(flat), batch)]
    return np.concatenate(probs).reshape(*crops.shape[:-2], -1)


def smooth_clips(clip_probs: np.ndarray, config, thresholds=RISK_COVERAGE_THRESHOLDS,
                 at_frames=AT_FRAMES) -> dict:
    """Each clip (C x F x K probabilities) through a fresh LabelSmoother per threshold.

    Returns {"held": C x F held class indices, "confidence": C x F, "kept": {t: C x F bool}} where
    kept[t] is "the published label is not unknown" with ``confidence_threshold`` t."""
    from fer_perception.labels import UNKNOWN_LABEL
    from fer_perception.smoothing import LabelSmoother

    n_clips, n_frames, _ = clip_probs.shape
    if max(at_frames) > n_frames:
        raise ValueError(f"at_frames {at_frames} beyond the clip length {n_frames}")
    held = np.empty((n_clips, n_frames), np.int64)
    confidence = np.empty((n_clips, n_frames), np.float64)
    kept = {}
    for j, t in enumerate(thresholds):
        cfg = config.with_(confidence_threshold=float(t))
        k = np.empty((n_clips, n_frames), bool)
        for c in range(n_clips):
            smoother = LabelSmoother(cfg)
            for f in range(n_frames):
                out = smoother.update(clip_probs[c, f])
                k[c, f] = out.label != UNKNOWN_LABEL
                if j == 0:
                    held[c, f], confidence[c, f] = out.class_index, out.confidence
        kept[float(t)] = k
    return {"held": held, "confidence": confidence, "kept": kept}


def rows_from_labels(kept: dict, predicted: np.ndarray, labels: np.ndarray) -> list[dict]:
    """A risk-coverage table (fer_training.evaluate.risk_coverage's rows) from published labels:
    ``kept[t]`` which faces got a label at threshold t, ``predicted`` the class they got."""
    right = np.asarray(predicted) == np.asarray(labels)
    rows = []
    for t, k in kept.items():
        n = int(k.sum())
        rows.append(dict(threshold=float(t), kept=n, coverage=float(n / max(len(k), 1)),
                         accuracy=float(right[k].mean()) if n else float("nan")))
    return rows


def label_changes(classes: np.ndarray) -> np.ndarray:
    """Per clip: how many times the class changes from one frame to the next."""
    return (np.diff(classes, axis=1) != 0).sum(axis=1)


def measure(backend, images: np.ndarray, labels: np.ndarray, spec: ClipSpec, config, seed: int = 0,
            thresholds=RISK_COVERAGE_THRESHOLDS, at_frames=AT_FRAMES) -> dict:
    """Everything the tables show for one data set (``labels``: class indices of the model)."""
    labels = np.asarray(labels, np.int64)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    crops = np.stack([clip_crops(face, rng, spec) for face in images])
    t1 = time.perf_counter()
    face_probs = classify(backend, images[:, None])[:, 0]
    clip_probs = classify(backend, crops)
    t2 = time.perf_counter()
    smoothed = smooth_clips(clip_probs, config, thresholds, at_frames)
    t3 = time.perf_counter()
    n_clips, n_frames, n_classes = clip_probs.shape
    frame_labels = np.repeat(labels, n_frames)
    face_class = face_probs.argmax(1)
    tables = {"face": risk_coverage(face_probs, labels, thresholds),
              "frame": risk_coverage(clip_probs.reshape(-1, n_classes), frame_labels, thresholds)}
    for k in at_frames:
        tables[f"smoothed@{k}"] = rows_from_labels({t: v[:, k - 1] for t, v in smoothed["kept"].items()},
                                                   smoothed["held"][:, k - 1], labels)
    frame_class = clip_probs.argmax(2)
    return dict(
        faces=int(n_clips), frames=int(n_frames), tables=tables,
        auto={name: suggested_threshold(rows) for name, rows in tables.items()},
        # how often the label of a jittered frame / the held label equals the face's own label
        frame_agreement=float((frame_class == face_class[:, None]).mean()),
        held_agreement={k: float((smoothed["held"][:, k - 1] == face_class).mean()) for k in at_frames},
        frame_changes=float(label_changes(frame_class).mean()),
        held_changes=float(label_changes(smoothed["held"]).mean()),
        clips_with_frame_change=float((label_changes(frame_class) > 0).mean()),
        clips_with_held_change=float((label_changes(smoothed["held"]) > 0).mean()),
        seconds=dict(crops=t1 - t0, inference=t2 - t1, smoothing=t3 - t2),
    )


def _fmt_threshold(t) -> str:
    return f"{t:.2f}" if t is not None else "none"


def markdown(results: dict, command: str, spec: ClipSpec, config, model: str, sample: str,
             shipped: bool = True) -> str:
    at = [name for name in next(iter(results.values()))["tables"] if name.startswith("smoothed@")]
    columns = ["face", "frame", *at]
    titles = {"face": "face", "frame": "one jittered frame", **{n: f"smoothed, frame {n.split('@')[1]}" for n in at}}
    out = [f"Command: `{command}`", "",
           f"{'Shipped model' if shipped else 'Model'} `{model}` on ONNX Runtime; {sample}. Clips: {spec.describe()}, each frame re-cropped "
           f"with `fer_perception.preprocessing.align_detection` from jittered eye keypoints (independent per "
           f"frame). Smoothing: fer_node's defaults (config/fer.yaml): `{config.method}`, alpha {config.alpha:g}, "
           f"hysteresis margin {config.hysteresis_margin:g} for {config.hysteresis_frames} frames. "
           "\"face\": each face once as stored (the model card's per-face table); \"one jittered frame\": every frame of "
           "every clip; \"smoothed, frame k\": the label fer_node publishes k frames into the clip (kept = not "
           "`unknown`, right = the held class is the face's label). Each cell: coverage / accuracy of kept.", ""]
    for name, r in results.items():
        out += [f"**{name}** ({r['faces']} faces, {r['faces'] * r['frames']} frames)", "",
                "| threshold | " + " | ".join(titles[c] for c in columns) + " |",
                "|---|" + "---|" * len(columns)]
        thresholds = [row["threshold"] for row in r["tables"]["face"]]
        for i, t in enumerate(thresholds):
            cells = []
            for c in columns:
                row = r["tables"][c][i]
                cells.append(f"{row['coverage']:.3f} / {row['accuracy']:.4f}" if row["kept"] else "0.000 / -")
            out.append(f"| {t:.2f} | " + " | ".join(cells) + " |")
        out.append(f"| auto rule (kept >= {TARGET_KEPT_ACCURACY:.0%}) | "
                   + " | ".join(_fmt_threshold(r["auto"][c]) for c in columns) + " |")
        held = ", ".join(f"{100 * v:.1f} % at frame {k}" for k, v in r["held_agreement"].items())
        out += ["", f"Same class as the face classified once: a jittered frame {100 * r['frame_agreement']:.1f} %, "
                    f"the held label {held}. Class changes per {r['frames']}-frame clip: per-frame argmax "
                    f"{r['frame_changes']:.2f} ({100 * r['clips_with_frame_change']:.1f} % of clips change at least "
                    f"once), held label {r['held_changes']:.2f} ({100 * r['clips_with_held_change']:.1f} %).", ""]
    return "\n".join(out).rstrip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=SETS)
    parser.add_argument("--limit", type=int, default=0, help="faces per data set (random subset; 0 = all)")
    d = ClipSpec()
    parser.add_argument("--frames", type=int, default=d.frames)
    parser.add_argument("--face-px", type=int, default=d.face_px)
    parser.add_argument("--shift", type=float, default=d.shift)
    parser.add_argument("--scale", type=float, default=d.scale)
    parser.add_argument("--angle", type=float, default=d.angle)
    parser.add_argument("--noise", type=float, default=d.noise)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", type=Path, help="an expression model file to measure instead of the shipped "
                        "default (e.g. a candidate export; not with --update-doc)")
    parser.add_argument("--update-doc", action="store_true",
                        help="write the tables into " + " and ".join(str(p.relative_to(REPO)) for p in DOCS))
    args = parser.parse_args(argv)
    from fer_perception.smoothing import SmoothingConfig

    spec = ClipSpec(args.frames, args.face_px, args.shift, args.scale, args.angle, args.noise)
    if max(AT_FRAMES) > spec.frames:
        parser.error(f"--frames must be at least {max(AT_FRAMES)}")
    if args.model is not None and args.update_doc:
        parser.error("--update-doc documents the shipped model: leave out --model")
    backend = build_backend(threads=args.threads, model=args.model)
    config = SmoothingConfig.from_yaml_defaults(labels=tuple(backend.labels))
    index = {name: i for i, name in enumerate(backend.labels)}
    results = {}
    for name in args.sets:
        images, names = load_set(name, args.limit or None, args.seed)
        results[name] = r = measure(backend, images, np.array([index[n] for n in names]), spec, config, args.seed)
        print(name, {k: v for k, v in r.items() if k != "tables"}, flush=True)
    command = "python benchmarks/smoothing_threshold.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    sample = "every face of each set" if not args.limit else f"a random {args.limit} faces of each set (seed {args.seed})"
    text = markdown(results, command.strip(), spec, config, Path(str(backend.model_path)).name, sample,
                    shipped=args.model is None)
    print(text)
    if args.update_doc:
        import rosharness as rh

        rh.replace_doc_block(DOCS[0], BEGIN, END, text, heading=HEADING)
        rh.replace_doc_block(DOCS[1], BEGIN, END, text, must_exist=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
