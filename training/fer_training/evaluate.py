"""``fer-evaluate``: accuracy, macro-F1, per-class recall, confusion matrix and expected calibration
error of a .keras, .onnx or .tflite model on a data set split; optional PNG figures.

    fer-evaluate --model runs/a1/model.keras --data ../shared/data/fer2013.npz --split public_test
    fer-evaluate --model exported/arch1.onnx --data ../shared/data/fer2013.npz --json out.json --png-dir figs
    fer-evaluate --run-dir runs/a1 --png-dir figs      # training curves from log.csv only

The model contract is the project's: float32 N x 48 x 48 x 1 pixels in 0..255 in, N x C
probabilities out. Predictions of every backend go through :func:`predict` so that the same
numbers come out of every format.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import data as fdata
from .cli import HelpFormatter, first_line
from .calibration import ECE_BINS, expected_calibration_error


# ------------------------------------------------------------------------------------- backends
def _export_sidecar(path: Path):
    """An exported model's sidecar (labels, whether its graph already mirrors; the runtime's rules),
    None when it has none; ModelLoadError when it exists but cannot be used."""
    from fer_perception.inference import read_sidecar, sidecar_path

    return read_sidecar(path) if sidecar_path(path).is_file() else None


class Predictor:
    """Runs a model file on uint8/float batches N x 48 x 48 (x 1) and returns probabilities."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"model {self.path} does not exist")
        suffix = self.path.suffix.lower()
        self.kind = {".keras": "keras", ".onnx": "onnx", ".tflite": "tflite"}.get(suffix)
        if self.kind is None:
            raise ValueError(f"{self.path}: unknown model format {suffix!r} (.keras, .onnx, .tflite)")
        from .runtime import cpu_count

        threads = threads or cpu_count()
        sidecar = None if self.kind == "keras" else _export_sidecar(self.path)
        #: the model's class names in output order (its run records or sidecar), None when unknown
        self.labels: tuple[str, ...] | None = sidecar.labels if sidecar is not None else None
        #: the graph itself averages each face with its mirror (an export with flip-TTA inside)
        self.mirrors_in_graph = sidecar is not None and sidecar.flip_tta
        if self.kind == "keras":
            from .runtime import configure

            configure()
            from .train import load_keras_model, model_label_names

            self.model = load_keras_model(self.path)
            self.num_classes = int(self.model.outputs[0].shape[-1])
            self.labels = model_label_names(self.path)
        elif self.kind == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
            self.num_classes = int(self.session.get_outputs()[0].shape[-1])
        else:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:  # pragma: no cover - older environments
                from tensorflow.lite.python.interpreter import Interpreter
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
            self.inp = self.interpreter.get_input_details()[0]
            self.out = self.interpreter.get_output_details()[0]
            self.num_classes = int(self.out["shape"][-1])
            self._batch = None

    def __call__(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = np.asarray(images)
        if x.ndim == 3:
            x = x[..., None]
        x = x.astype(np.float32)
        outs = []
        for i in range(0, len(x), batch_size):
            outs.append(self._run(x[i:i + batch_size]))
        if not outs:
            return np.zeros((0, self.num_classes), np.float32)
        return np.concatenate(outs).astype(np.float32)

    def _run(self, xb: np.ndarray) -> np.ndarray:
        if self.kind == "keras":
            return np.asarray(self.model(xb, training=False))
        if self.kind == "onnx":
            return self.session.run(None, {self.input_name: xb})[0]
        return self._run_tflite(xb)

    def _run_tflite(self, xb: np.ndarray) -> np.ndarray:
        it, inp, out = self.interpreter, self.inp, self.out
        if self._batch != len(xb):
            it.resize_tensor_input(inp["index"], [len(xb), *xb.shape[1:]])
            it.allocate_tensors()
            self.inp = inp = it.get_input_details()[0]
            self.out = out = it.get_output_details()[0]
            self._batch = len(xb)
        if inp["dtype"] != np.float32:  # fully-integer model: quantise the input
            scale, zero = inp["quantization"]
            xb = np.clip(np.round(xb / scale + zero), np.iinfo(inp["dtype"]).min,
                         np.iinfo(inp["dtype"]).max).astype(inp["dtype"])
        it.set_tensor(inp["index"], xb)
        it.invoke()
        y = it.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y


# -------------------------------------------------------------------------------------- metrics
def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(preds)), 1)
    return cm


# Thresholds of the risk-coverage table: the node publishes ``unknown`` below its
# ``confidence_threshold``, so a dialogue manager reads this table to know what each setting buys.
RISK_COVERAGE_THRESHOLDS = (0.0, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9)
# The default threshold a model ships with (fer-export --confidence-threshold auto): the lowest
# threshold at which the faces kept are at least this accurate on the selection split.
TARGET_KEPT_ACCURACY = 0.75
BOOTSTRAP_SEED = 20211201


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sound for small n, e.g. disgust's 55 images)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def risk_coverage(probs: np.ndarray, labels: np.ndarray,
                  thresholds=RISK_COVERAGE_THRESHOLDS) -> list[dict]:
    """For each threshold t: the fraction of faces whose top probability is >= t (coverage) and the
    accuracy of those faces (1 - risk)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    top = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = probs.argmax(axis=1) == labels if len(probs) else np.zeros(0, bool)
    rows = []
    for t in thresholds:
        kept = top >= t
        n = int(kept.sum())
        rows.append(dict(threshold=float(t), kept=n, coverage=float(n / max(len(labels), 1)),
                         accuracy=float(correct[kept].mean()) if n else float("nan")))
    return rows


def suggested_threshold(rows: list[dict], target: float = TARGET_KEPT_ACCURACY) -> float | None:
    """The lowest threshold of a risk-coverage table whose kept faces reach ``target`` accuracy."""
    for row in sorted(rows, key=lambda r: r["threshold"]):
        if row["kept"] and row["accuracy"] >= target:
            return row["threshold"]
    return None


def bootstrap_interval(statistic, probs: np.ndarray, labels: np.ndarray, resamples: int = 1000,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95 % percentile bootstrap interval of ``statistic(probs, labels)`` over images."""
    n = len(labels)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = [statistic(probs[idx], labels[idx]) for idx in (rng.integers(0, n, n) for _ in range(resamples))]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def metrics_from_probs(probs: np.ndarray, labels: np.ndarray, label_names) -> dict:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    k = probs.shape[1]
    preds = probs.argmax(axis=1)
    cm = confusion_matrix(labels, preds, k)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(np.float64)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0  # macro-F1 over the classes present in the split
    names = list(label_names)[:k] + [f"class_{i}" for i in range(len(label_names), k)]
    correct = int(tp.sum())
    return dict(
        images=int(len(labels)),
        accuracy=float((preds == labels).mean()) if len(labels) else float("nan"),
        macro_f1=float(f1[present].mean()) if present.any() else float("nan"),
        accuracy_ci95=list(wilson_interval(correct, len(labels))),
        per_class_recall={n: float(r) for n, r, p in zip(names, recall, present) if p},
        per_class_recall_ci95={n: list(wilson_interval(int(t), int(s)))
                               for n, t, s, p in zip(names, tp, support, present) if p},
        per_class_f1={n: float(v) for n, v, p in zip(names, f1, present) if p},
        support={n: int(s) for n, s in zip(names, support)},
        ece=expected_calibration_error(probs, labels, ECE_BINS) if len(labels) else float("nan"),
        ece_bins=ECE_BINS,
        ece_ci95=list(bootstrap_interval(lambda p, y: expected_calibration_error(p, y, ECE_BINS), probs, labels)),
        risk_coverage=risk_coverage(probs, labels),
        nll=float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)))) if len(labels) else float("nan"),
        confusion_matrix=cm.tolist(),
        label_names=names,
    )


def majority_agreement(probs: np.ndarray, majority: np.ndarray) -> dict:
    """Accuracy against the annotators' majority labels (FER+ for FER2013; -1 = no majority, left out)."""
    keep = np.asarray(majority) >= 0
    correct = int((np.asarray(probs)[keep].argmax(1) == np.asarray(majority)[keep]).sum())
    n = int(keep.sum())
    return dict(images=n, accuracy=correct / n if n else float("nan"), accuracy_ci95=list(wilson_interval(correct, n)))


def select_split(ds: fdata.FaceDataset, split: str | None) -> tuple[np.ndarray, str]:
    """Indices of the named split; default: public_test/val/test if present, else all images."""
    names = ds.split_names()
    if split in (None, "auto"):
        split = next((n for n in ("public_test", "val", "validation", "test") if n in names), "all")
    if split == "all":
        return np.arange(len(ds)), "all"
    if split not in names:
        raise fdata.DatasetError(f"{ds.source}: no split {split!r} (has {names or ['all']})")
    return np.flatnonzero(ds.splits == split), split


class TrainingOverlapError(ValueError):
    """The evaluated images include the ones the model trained on: that is not an accuracy."""


def training_run_of(model_path: Path) -> dict | None:
    """The fer-train config of the run that made ``model_path`` (a .keras in a run dir or its
    checkpoints/, or an export whose sidecar names its source .keras), or None."""
    from .train import CONFIG_FILE, run_records

    candidates = [model_path]
    if model_path.suffix in (".onnx", ".tflite"):
        from fer_perception.inference import sidecar_path

        try:
            source = json.loads(sidecar_path(model_path).read_text()).get("source_model")
        except (OSError, ValueError, AttributeError):
            source = None
        if source:
            candidates = [Path(source)]
    return next((record for path in candidates for record in run_records(path, CONFIG_FILE)), None)


def check_held_out(model_path: Path, data_path, split_name: str, n_images: int, warn=print) -> None:
    """Refuse a split that contains the model's training images; name the risk when it cannot be told."""
    run = training_run_of(Path(model_path))
    same_data = run is not None and run.get("data") and Path(run["data"]).resolve() == Path(data_path).resolve()
    if same_data and (split_name == "all" or split_name == "train"):
        raise TrainingOverlapError(
            f"split {split_name!r} of {data_path} contains the images {model_path} trained on (its run trained on "
            f"this file with split {run.get('split', 'auto')!r}): that is not a held-out accuracy. Evaluate a split "
            f"the run held out (--split public_test on FER2013), or read the run's own validation figures in its "
            f"results.json (subject-independent folds on CK+)")
    if run is None and split_name == "all":
        warn(f"fer-evaluate: note: split 'all' is every one of the {n_images} images of {data_path}; this is a "
             f"held-out accuracy only if {Path(model_path).name} never trained on this data set")


def align_to_data(probs: np.ndarray, model_labels, data_labels) -> np.ndarray:
    """The model's probability columns in the data set's class order, matched by (canonical) name.

    Raises ValueError when the names cannot be matched one to one."""
    if model_labels is None or tuple(model_labels) == tuple(data_labels):
        return probs
    from fer_perception.labels import canonical_label

    def key(name):
        return canonical_label(name) or str(name).strip().lower()

    index = {key(n): i for i, n in enumerate(model_labels)}
    if len(index) != len(model_labels) or sorted(index) != sorted(key(n) for n in data_labels):
        raise ValueError(f"the model's classes ({', '.join(model_labels)}) are not the data set's "
                         f"({', '.join(data_labels)}); use --fer-order to map the data set onto FER2013's")
    return probs[:, [index[key(n)] for n in data_labels]]


def scored(probs: np.ndarray, ds, index: np.ndarray) -> dict:
    """``metrics_from_probs`` of the images ``index`` of ``ds``, plus the agreement with the
    annotators' majority where the data set has one (FER+ for FER2013)."""
    result = metrics_from_probs(probs, ds.labels[index], ds.label_names)
    if ds.majority_labels is not None:
        result["annotator_majority"] = majority_agreement(probs, ds.majority_labels[index])
    return result


def evaluate_model(model_path, data_path, split: str | None = None, *, label_file=None,
                   max_images: int | None = None, to_fer_order: bool = False, warn=print) -> dict:
    ds = fdata.load_dataset(data_path, label_file=label_file)
    if to_fer_order:
        ds = fdata.to_fer2013_order(ds)
    idx, split_name = select_split(ds, split)
    check_held_out(Path(model_path), data_path, split_name, len(idx), warn=warn)
    if max_images:
        idx = idx[:max_images]
    predictor = Predictor(model_path)
    if predictor.num_classes != ds.num_classes:
        raise ValueError(f"model {model_path} outputs {predictor.num_classes} classes, the data set has "
                         f"{ds.num_classes} ({list(ds.label_names)}); use --fer-order to map its labels")
    t0 = time.time()
    probs = align_to_data(predictor(ds.images[idx]), predictor.labels, ds.label_names)
    secs = time.time() - t0
    result = scored(probs, ds, idx)
    result.update(model=str(model_path), format=predictor.kind, data=str(data_path), split=split_name,
                  seconds=round(secs, 3), images_per_s=round(len(idx) / max(secs, 1e-9), 1))
    return result


# --------------------------------------------------------------------------------------- figures
def plot_confusion(cm, label_names, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=120)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def read_log_csv(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path} has no epochs")
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]) for k in rows[0]}


def plot_training_curves(log_csv: Path, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = read_log_csv(log_csv)
    ep = log["epoch"] + 1
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    axes[0].plot(ep, log["loss"], label="train")
    axes[0].plot(ep, log["val_loss"], label="validation")
    axes[0].set_title("loss")
    axes[1].plot(ep, log["accuracy"], label="train (augmented)")
    axes[1].plot(ep, log["val_accuracy"], label="validation")
    axes[1].set_title("accuracy")
    axes[2].plot(ep, log["lr"])
    axes[2].set_title("learning rate")
    axes[2].set_yscale("log" if np.nanmin(log["lr"]) > 0 else "linear")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    fig.suptitle(title or str(log_csv.parent))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def format_report(r: dict) -> str:
    lines = [f"{r['model']} ({r['format']}) on {r['data']} [{r['split']}]: {r['images']} images",
             f"  accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  ECE({r['ece_bins']}) {r['ece']:.4f}"
             f"  NLL {r['nll']:.4f}  ({r['images_per_s']:.0f} images/s)",
             "  recall: " + "  ".join(f"{k} {v:.3f}" for k, v in r["per_class_recall"].items())]
    if "accuracy_ci95" in r:
        lo, hi = r["accuracy_ci95"]
        elo, ehi = r["ece_ci95"]
        lines.append(f"  95 % intervals: accuracy {lo:.4f}..{hi:.4f} (Wilson)  ECE {elo:.4f}..{ehi:.4f} "
                     f"(bootstrap, 1000 resamples)")
        lines.append("  recall 95 %: " + "  ".join(f"{k} {lo:.2f}..{hi:.2f}"
                                                  for k, (lo, hi) in r["per_class_recall_ci95"].items()))
    if r.get("annotator_majority"):
        m = r["annotator_majority"]
        lo, hi = m["accuracy_ci95"]
        lines.append(f"  against the annotators' majority (FER+ rule; {m['images']} images with one): accuracy "
                     f"{m['accuracy']:.4f} ({lo:.4f}..{hi:.4f})")
    if r.get("risk_coverage"):
        lines.append("  risk-coverage (faces whose top probability >= threshold):")
        lines.append("    threshold  coverage  accuracy of kept")
        for row in r["risk_coverage"]:
            lines.append(f"    {row['threshold']:>9.2f}  {row['coverage']:>8.3f}  {row['accuracy']:>16.4f}")
        t = suggested_threshold(r["risk_coverage"])
        lines.append(f"  lowest threshold with kept accuracy >= {TARGET_KEPT_ACCURACY:.2f}: "
                     + (f"{t:.2f}" if t is not None else "none in the table"))
    names = r["label_names"]
    width = max(len(n) for n in names) + 1
    lines.append("  confusion (rows true, cols predicted):")
    lines.append("  " + " " * width + "".join(f"{n[:6]:>7}" for n in names))
    for n, row in zip(names, r["confusion_matrix"]):
        lines.append(f"  {n:>{width}}" + "".join(f"{v:>7}" for v in row))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fer-evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--model", help=".keras, .onnx or .tflite model")
    p.add_argument("--data", help=".npz, FER2013 .csv or folder-per-class directory")
    p.add_argument("--split", help="split name (default: public_test/val/test if present, else all)")
    p.add_argument("--label-file", help="class list / mapping for the data set")
    p.add_argument("--fer-order", action="store_true", help="map the data set's classes onto FER2013's order")
    p.add_argument("--max-images", type=int, help="evaluate only the first N images of the split")
    p.add_argument("--json", help="write the metrics here")
    p.add_argument("--png-dir", help="write confusion-matrix (and training-curve) PNGs here")
    p.add_argument("--run-dir", help="a fer-train run dir: plot its log.csv training curves")
    args = p.parse_args(argv)
    if not args.run_dir and not (args.model and args.data):
        p.error("need --model and --data (and/or --run-dir for training curves)")
    result = None
    try:
        if args.model:
            result = evaluate_model(args.model, args.data, args.split, label_file=args.label_file,
                                    max_images=args.max_images, to_fer_order=args.fer_order,
                                    warn=lambda line: print(line, file=sys.stderr))
            print(format_report(result))
    except (fdata.DatasetError, FileNotFoundError, ValueError) as exc:
        print(f"fer-evaluate: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a model file the runtime cannot read (Keras/ONNX Runtime/LiteRT errors)
        print(f"fer-evaluate: cannot evaluate {args.model}: {first_line(exc)}", file=sys.stderr)
        return 2
    if args.png_dir:
        out = Path(args.png_dir)
        if result is not None:
            stem = Path(args.model).stem
            f = plot_confusion(result["confusion_matrix"], result["label_names"], out / f"{stem}_confusion.png",
                               f"{stem} on {Path(args.data).name} [{result['split']}]: acc {result['accuracy']:.3f}")
            print(f"wrote {f}")
        run_dir = Path(args.run_dir) if args.run_dir else (Path(args.model).parent if args.model else None)
        if run_dir is not None and (run_dir / "log.csv").exists():
            f = plot_training_curves(run_dir / "log.csv", out / f"{run_dir.name}_curves.png")
            print(f"wrote {f}")
        elif args.run_dir:
            print(f"fer-evaluate: {run_dir}/log.csv not found", file=sys.stderr)
            return 2
    if args.json and result is not None:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
