#!/usr/bin/env python3
"""One row of docs/training.md's lever table: every figure the model issue asks of a candidate.

    .venv/bin/python tools/lever_row.py --run-dir /work/fer_runs/lever_cw05 --name "class balance 0.5"
    .venv/bin/python tools/lever_row.py --run-dir training/artifacts/arch1_fer2013 \\
        --model training/artifacts/arch1_fer2013/arch1_fer2013.keras --name "best recipe (shipped)"

Scores a fer-train run's model (``RUN/model.keras``, the epoch it selected on PublicTest; or any
.keras/.onnx/.tflite given with ``--model``) with and without flip-TTA (the mean of the face's and its
mirror's probabilities, as fer-train's results do; ``--tta-in-graph`` for an exported file that
already averages its views: scored as it is, in the flip-TTA columns):

* FER2013 PublicTest: accuracy, per-class recall (disgust with its 95 % Wilson interval), ECE;
* FER+ majority: accuracy on the PublicTest images whose FER+ votes have a majority (the FERPlus
  "majority" rule, ``fer_training.data.majority_vote_labels``);
* CK+48 cross-dataset: all of it, contempt excluded, accuracy with its interval, per-class recall,
  ECE with its bootstrap interval;
* re-cropped like the node (``--no-recrop`` skips it, ~3 minutes): both sets' faces re-cropped 15 times
  each with tracking jitter and smoothed as fer_node does (benchmarks/smoothing_threshold.py's clips,
  seed 0): the accuracy of one jittered frame and of the label held at frame 15. Test-time views that
  help only the data sets' own crops show up here (docs/training.md, the 4-view row).

Epochs and wall time come from the run's ``log.csv``. Prints the markdown row and, with ``--json``,
writes every figure. Nothing here selects anything: the run chose its epoch on PublicTest.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

SHARED = REPO.parent / "shared" / "data"
COLUMNS = ("lever", "command", "epochs", "wall", "PublicTest (flip-TTA)", "per-class recall (flip-TTA)",
           "ECE", "CK+48 (flip-TTA)", "FER+ majority (flip-TTA)",
           "re-cropped like the node: one frame / smoothed (PublicTest; CK+48)", "kept?")


def run_time(run_dir: Path) -> tuple[int, float]:
    """(epochs run, minutes of training) from a fer-train log.csv."""
    with open(run_dir / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return len(rows), sum(float(r["seconds"]) for r in rows) / 60.0


def with_mirror(predict, flip_tta: bool):
    """``predict``, averaged over each face and its mirror when ``flip_tta`` (TTA outside the graph)."""
    if not flip_tta:
        return predict
    return lambda faces: 0.5 * (predict(faces) + predict(faces[:, :, ::-1]))


def score(predict, ds, index, flip_tta: bool) -> dict:
    from fer_training.evaluate import scored

    result = scored(with_mirror(predict, flip_tta)(ds.images[index]), ds, index)
    for key in ("risk_coverage", "confusion_matrix"):
        result.pop(key, None)
    return result


def recropped(predict, images: np.ndarray, labels: np.ndarray, label_names, flip_tta: bool) -> dict:
    """Accuracy on node-like re-crops of ``images``: one jittered frame, and the smoothed label the
    node holds at frame 15 (benchmarks/smoothing_threshold.py's clips and fer_node's smoothing)."""
    for folder in (REPO / "benchmarks", REPO / "test" / "harness"):  # the benchmark and its doc helpers
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    import smoothing_threshold as st
    from fer_perception.smoothing import SmoothingConfig

    views = with_mirror(predict, flip_tta)

    class Views:  # st.classify's backend: N x 48 x 48 x 1 float faces -> probabilities
        def predict(self, x):
            return views(np.asarray(x)[..., 0])

    config = SmoothingConfig.from_yaml_defaults(labels=tuple(label_names))
    r = st.measure(Views(), images, labels, st.ClipSpec(), config, seed=0, thresholds=(0.0,))
    return {"faces": r["faces"], "frames": r["frames"], "frame_accuracy": r["tables"]["frame"][0]["accuracy"],
            "smoothed_accuracy_at_15": r["tables"]["smoothed@15"][0]["accuracy"]}


def measure(model_path: Path, fer2013: Path, ckplus: Path, tta_in_graph: bool = False, recrop: bool = True) -> dict:
    from fer_training import data as fdata
    from fer_training.evaluate import Predictor, align_to_data, select_split

    predictor = Predictor(model_path)
    fer = fdata.load_dataset(fer2013)

    def predict(images):  # columns in FER2013's order, whatever the model's sidecar says
        return align_to_data(predictor(images), predictor.labels, fer.label_names)

    public_test, _ = select_split(fer, "public_test")
    out = {"model": str(model_path), "tta_in_graph": tta_in_graph,
           "public_test": None if tta_in_graph else score(predict, fer, public_test, flip_tta=False),
           "public_test_flip_tta": score(predict, fer, public_test, flip_tta=not tta_in_graph)}
    if recrop:
        out["recropped_public_test"] = recropped(predict, fer.images[public_test], fer.labels[public_test],
                                                 fer.label_names, flip_tta=not tta_in_graph)
    if ckplus.exists():
        ck = fdata.to_fer2013_order(fdata.load_dataset(ckplus))
        out["ckplus_flip_tta"] = score(predict, ck, np.arange(len(ck)), flip_tta=not tta_in_graph)
        if recrop:
            out["recropped_ckplus"] = recropped(predict, ck.images, ck.labels, ck.label_names,
                                                flip_tta=not tta_in_graph)
    return out


def markdown_row(name: str, command: str, epochs: int, minutes: float, m: dict, kept: str) -> str:
    pt, tta = m["public_test"], m["public_test_flip_tta"]
    lo, hi = tta["per_class_recall_ci95"]["disgust"]
    recall = ", ".join(f"{k} {v:.2f}" for k, v in tta["per_class_recall"].items()) + f" (disgust {lo:.2f}-{hi:.2f})"
    plain = (f"{100 * pt['accuracy']:.2f} % ", f"{pt['ece']:.3f} ") if pt else ("", "")
    cells = [name, f"`{command}`", str(epochs), f"{minutes:.0f} min",
             f"{plain[0]}({100 * tta['accuracy']:.2f} %)", recall, f"{plain[1]}({tta['ece']:.3f})"]
    ck = m.get("ckplus_flip_tta")
    if ck:
        clo, chi = ck["accuracy_ci95"]
        elo, ehi = ck["ece_ci95"]
        cells.append(f"{100 * ck['accuracy']:.2f} % ({100 * clo:.1f}-{100 * chi:.1f}); disgust "
                     f"{ck['per_class_recall']['disgust']:.2f}, angry {ck['per_class_recall']['angry']:.2f}, "
                     f"fear {ck['per_class_recall']['fear']:.2f}; ECE {ck['ece']:.3f} ({elo:.3f}-{ehi:.3f})")
    else:
        cells.append("(no ckplus48.npz)")
    major = tta.get("annotator_majority")
    cells.append(f"{100 * major['accuracy']:.2f} %" if major else "(no votes)")
    parts = [f"{100 * r['frame_accuracy']:.2f} / {100 * r['smoothed_accuracy_at_15']:.2f} %"
             for r in (m.get("recropped_public_test"), m.get("recropped_ckplus")) if r]
    cells.append("; ".join(parts) if parts else "(not measured)")
    cells.append(kept)
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", type=Path, required=True, help="a fer-train run directory (its log.csv)")
    p.add_argument("--model", type=Path, help="the model to score (default: RUN/model.keras)")
    p.add_argument("--name", required=True, help="the lever, as the table names it")
    p.add_argument("--command", default="", help="the command that trained it (default: RUN/command.txt, written by fer-train)")
    p.add_argument("--tta-in-graph", action="store_true",
                   help="the model file already averages its TTA views (a fer-export file): score it as it is")
    p.add_argument("--kept", default="", help="the table's kept? cell")
    p.add_argument("--no-recrop", action="store_true", help="skip the re-cropped-like-the-node figures (~3 min)")
    p.add_argument("--fer2013", type=Path, default=SHARED / "fer2013.npz")
    p.add_argument("--ckplus", type=Path, default=SHARED / "ckplus48.npz")
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args(argv)

    from fer_training.runtime import configure

    configure()
    from fer_training.train import COMMAND_FILE

    model_path = args.model or args.run_dir / "model.keras"
    for path, what in ((model_path, "model"), (args.run_dir / "log.csv", "training log"), (args.fer2013, "FER2013")):
        if not path.exists():
            print(f"lever_row: {what} {path} does not exist", file=sys.stderr)
            return 2
    command = args.command
    recorded = args.run_dir / COMMAND_FILE
    if not command and recorded.is_file():
        command = recorded.read_text().strip()
    if not command:
        print(f"lever_row: {recorded} does not exist (runs before fer-train recorded its command line): "
              "pass --command", file=sys.stderr)
        return 2
    epochs, minutes = run_time(args.run_dir)
    m = measure(model_path, args.fer2013, args.ckplus, args.tta_in_graph, recrop=not args.no_recrop)
    m.update(name=args.name, command=command, epochs=epochs, train_minutes=round(minutes, 1))
    print("| " + " | ".join(COLUMNS) + " |")
    print(markdown_row(args.name, command, epochs, minutes, m, args.kept))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(m, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
