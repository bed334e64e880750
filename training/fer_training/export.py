"""``fer-export``: Keras model -> ONNX / TFLite (fp32, fp16, int8) / TensorRT, each checked against
the Keras model, with an optional temperature and test-time augmentation folded into the exported graph.

    fer-export --model runs/a1/model.keras --out-dir exported --calibration-data ../shared/data/fer2013.npz \\
               --formats onnx,tflite-fp32,tflite-fp16,tflite-int8 --temperature auto --flip-tta

Every exported file has the model contract: input ``faces`` float32 [N, 48, 48, 1] with grey pixels
in 0..255 (normalisation is inside the graph), output ``probabilities`` float32 [N, C] in the
training data's class order (FER2013's for FER2013 models). Checks: fp32 formats must match the
Keras model to max |dp| <= 1e-5 on the validation images (else the command fails); fp16/int8
report top-1 agreement and the accuracy delta. A JSON sidecar next to the ONNX file records labels,
input/output spec, hashes of the source and exported models, temperature, TTA and the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fer_perception.inference.sidecar import file_sha256

from . import data as fdata
from .calibration import CROP_TTA_WINDOWS
from .cli import HelpFormatter, first_line

FORMATS = ("onnx", "tflite-fp32", "tflite-fp16", "tflite-int8", "tensorrt")
DEFAULT_FORMATS = "onnx,tflite-fp32,tflite-fp16,tflite-int8,tensorrt"
FP32_TOLERANCE = 1e-5
ONNX_OPSET = 17


class ExportError(RuntimeError):
    pass


def _serving_function(model):
    import tensorflow as tf

    from .models import INPUT_SHAPE

    @tf.function(input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name="faces")])
    def serve(faces):
        return model(faces, training=False)

    return serve


# ------------------------------------------------------------------------------------------- ONNX
def export_onnx(model, path: Path, opset: int = ONNX_OPSET) -> Path:
    import onnx
    import tensorflow as tf
    import tf2onnx

    from .models import INPUT_NAME, INPUT_SHAPE, OUTPUT_NAME

    serve = _serving_function(model)
    spec = [tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name=INPUT_NAME)]
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    _rename_io(proto, INPUT_NAME, OUTPUT_NAME)
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def _rename_io(proto, input_name: str, output_name: str) -> None:
    """Give the graph's single input/output the contract's names and a symbolic batch dim N."""
    g = proto.graph
    inputs = [i for i in g.input if i.name not in {t.name for t in g.initializer}]
    if len(inputs) != 1 or len(g.output) != 1:
        raise ExportError(f"expected one input and one output, got {len(inputs)} / {len(g.output)}")
    renames = {inputs[0].name: input_name, g.output[0].name: output_name}
    for node in g.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    inputs[0].name = input_name
    g.output[0].name = output_name
    for vi in (inputs[0], g.output[0]):
        dim0 = vi.type.tensor_type.shape.dim[0]
        dim0.ClearField("dim_value")
        dim0.dim_param = "N"


# ----------------------------------------------------------------------------------------- TFLite
def export_tflite(model, path: Path, mode: str, representative: np.ndarray | None = None) -> Path:
    import tensorflow as tf

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Freeze the weights into constants first: converting the live function leaves resource
    # variables in the flatbuffer (READ_VARIABLE ops) that break int8 calibration and fp32 equality.
    frozen = convert_variables_to_constants_v2(_serving_function(model).get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if representative is None or not len(representative):
            raise ExportError("tflite-int8 needs representative images: pass --calibration-data")
        rep = representative.astype(np.float32)[..., None]

        def gen():
            for i in range(len(rep)):
                yield [rep[i:i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        # Integer kernels inside; float32 input/output so the runtime contract does not change.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif mode != "fp32":
        raise ExportError(f"unknown TFLite mode {mode!r}")
    blob = converter.convert()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return path


# --------------------------------------------------------------------------------------- TensorRT
def tensorrt_available() -> tuple[bool, str]:
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return False, f"the tensorrt Python package is not importable here ({exc}); build the engine on " \
                      "the target with: trtexec --onnx=MODEL.onnx --saveEngine=MODEL.engine " \
                      "--minShapes=faces:1x48x48x1 --optShapes=faces:8x48x48x1 --maxShapes=faces:64x48x48x1 --fp16"
    return True, ""


def export_tensorrt(onnx_path: Path, precision: str = "fp16", max_batch: int = 64, calibration=None) -> Path:
    """Build the engine the runtime loads: through the runtime's own TensorRTRunner, so it lands in
    its cache under its keyed name next to the ONNX file (``<stem>.<precision>.b<max>.<key>.engine``)
    and the node finds it on first start instead of building it again. int8 calibrates on
    ``calibration`` (faces), and its .calib cache stays beside the engine for later starts."""
    from fer_perception.inference.tensorrt_runtime import TensorRTRunner

    runner = TensorRTRunner(onnx_path, precision=precision, max_batch=max_batch, calibration=calibration)
    try:
        return runner.engine_path
    finally:
        runner.close()


# ------------------------------------------------------------------------------------------ main
def _eval_split(ds: fdata.FaceDataset, val_split=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices: the named validation split (default public_test/val/test) and
    the ``train`` split (else every other image), or a stratified/subject split when it has none."""
    names = ds.split_names()
    if val_split is None:
        val_split = next((n for n in ("public_test", "val", "validation", "test") if n in names), None)
    if val_split is not None:
        va = np.flatnonzero(ds.splits == val_split)
        tr = np.flatnonzero(ds.splits == "train") if "train" in names else np.setdiff1d(np.arange(len(ds)), va)
        return tr, va
    split = fdata.make_split(ds, "stratified" if ds.subjects is None else "subject", seed=seed)
    return split.train, split.val


def load_eval_data(path, label_file=None, val_split=None, max_val: int = 4000, max_rep: int = 500, seed: int = 0):
    """(validation images, labels, label names, representative training images) from a data set."""
    ds = fdata.load_dataset(path, label_file=label_file)
    tr, va = _eval_split(ds, val_split, seed)
    rng = np.random.default_rng(seed)
    if len(va) > max_val:
        va = np.sort(rng.choice(va, max_val, replace=False))
    rep = np.sort(rng.choice(tr, min(max_rep, len(tr)), replace=False)) if len(tr) else va[:max_rep]
    return ds.images[va], ds.labels[va], ds.label_names, ds.images[rep]


def training_prior(path, label_file=None, val_split=None, seed: int = 0) -> np.ndarray:
    """Class frequencies of the data set's training images (the part fer-export does not validate on)."""
    ds = fdata.load_dataset(path, label_file=label_file)
    tr, _ = _eval_split(ds, val_split, seed)
    counts = np.bincount(ds.labels[tr], minlength=ds.num_classes).astype(np.float64)
    if not (counts > 0).all():
        missing = [n for n, c in zip(ds.label_names, counts) if c == 0]
        raise ExportError(f"--logit-adjust needs training images of every class; {path} has none of {missing}")
    return counts / counts.sum()


def compare(ref: np.ndarray, got: np.ndarray, labels: np.ndarray | None) -> dict:
    out = dict(max_abs_diff=float(np.abs(ref - got).max()) if len(ref) else 0.0,
               top1_agreement=float((ref.argmax(1) == got.argmax(1)).mean()) if len(ref) else 1.0)
    if labels is not None and len(labels):
        out["accuracy"] = float((got.argmax(1) == labels).mean())
        out["accuracy_delta"] = out["accuracy"] - float((ref.argmax(1) == labels).mean())
    return out


def run_export(model_path, out_dir, *, formats=DEFAULT_FORMATS, calibration_data=None, label_file=None,
               val_split=None, temperature="1", flip_tta=False, crop_tta=0, crop_tta_windows="all", name=None, strict=True,
               confidence_threshold=None, logit_adjust="0", log=print) -> dict:
    from .runtime import configure

    configure()
    from .calibration import (LOGIT_ADJUST_ACCURACY_TOLERANCE, choose_logit_adjustment, fit_temperature,
                              logit_adjustment, serving_model)
    from .evaluate import Predictor
    from .train import model_label_names, predict_probs

    model_path, out_dir = Path(model_path), Path(out_dir)
    fmts = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    bad = [f for f in fmts if f not in FORMATS]
    if bad:
        raise ExportError(f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
    if "tensorrt" in fmts and "onnx" not in fmts:
        fmts.insert(0, "onnx")  # the engine is built from the ONNX file
    if crop_tta and not 0 < int(crop_tta) < 48:
        raise ExportError(f"--crop-tta must be a window size between 1 and 47 pixels (0 = off), got {crop_tta}")
    if crop_tta_windows not in CROP_TTA_WINDOWS:
        raise ExportError(f"--crop-tta-windows must be one of {', '.join(CROP_TTA_WINDOWS)}, got {crop_tta_windows!r}")
    tta = dict(flip_tta=bool(flip_tta), crop_tta=int(crop_tta), crop_tta_windows=crop_tta_windows)
    name = name or model_path.stem
    out_dir.mkdir(parents=True, exist_ok=True)

    base = load_model_for_export(model_path)
    num_classes = int(base.outputs[0].shape[-1])
    # The model's own class names (its fer-train run's records) go into the sidecar; calibration data
    # must name the same classes in the same order, or its labels would be scored against other classes.
    label_names = model_label_names(model_path)
    if label_names is not None and len(label_names) != num_classes:
        raise ExportError(f"{model_path} outputs {num_classes} classes but its run records {len(label_names)} "
                          f"names ({', '.join(label_names)})")
    x_val = y_val = rep = None
    if calibration_data:
        x_val, y_val, data_names, rep = load_eval_data(calibration_data, label_file, val_split)
        if len(data_names) != num_classes:
            raise ExportError(f"model outputs {num_classes} classes, {calibration_data} has {len(data_names)} "
                              f"({', '.join(data_names)})")
        if label_names is not None and tuple(data_names) != tuple(label_names):
            raise ExportError(f"{calibration_data} names its classes {', '.join(data_names)}; the model's are "
                              f"{', '.join(label_names)}: calibrate with data of the model's own classes")
        label_names = label_names or tuple(data_names)
        log(f"validation images: {len(x_val)}, representative images: {len(rep)} from {calibration_data}")
    else:
        x_val = np.random.default_rng(0).integers(0, 256, (256, 48, 48), dtype=np.uint8)
        log("no --calibration-data: checking against 256 random images (no accuracy figures)")
    if label_names is None:
        from .data import FER2013_LABELS

        if num_classes != len(FER2013_LABELS):
            raise ExportError(f"{model_path} records no class names (no fer-train run records beside it) and "
                              f"has {num_classes} outputs: pass --calibration-data with its data set")
        label_names = FER2013_LABELS
        log(f"warning: {model_path} records no class names; taking FER2013's ({', '.join(label_names)})")

    # Logit adjustment (a per-class bias, chosen on the validation split with the exported TTA), then
    # the temperature, fitted with the bias in place.
    adjustment, bias = None, None
    setting = str(logit_adjust).strip().lower()
    if setting not in ("0", "0.0", "none", "off", ""):
        if not calibration_data:
            raise ExportError("--logit-adjust needs --calibration-data (the class prior of its training split)")
        prior = training_prior(calibration_data, label_file, val_split)
        if setting == "auto":
            probs_t1 = predict_probs(serving_model(base, **tta), x_val)
            tau, table = choose_logit_adjustment(probs_t1, y_val, prior)
            chosen = next(r for r in table if r["tau"] == tau)
            log(f"logit adjustment: tau = {tau:.2f} (of 0..1, the most balanced within "
                f"{100 * LOGIT_ADJUST_ACCURACY_TOLERANCE:g} pt of the best accuracy on {len(y_val)} validation images: "
                f"accuracy {chosen['accuracy']:.4f}, balanced {chosen['balanced_accuracy']:.4f}, "
                f"lowest class recall {chosen['min_recall']:.3f})")
        else:
            try:
                tau, table = float(setting), None
            except ValueError:
                raise ExportError(f"--logit-adjust must be a number >= 0, auto or 0 (off), got {logit_adjust!r}") from None
            if tau < 0:
                raise ExportError(f"--logit-adjust must be >= 0, got {tau}")
        bias = logit_adjustment(prior, tau) if tau > 0 else None
        adjustment = dict(tau=tau, class_prior=prior.tolist(), bias=None if bias is None else bias.tolist(),
                          chosen_by=(f"auto: the highest balanced accuracy within {100 * LOGIT_ADJUST_ACCURACY_TOLERANCE:g} "
                                     "pt of the best validation accuracy") if setting == "auto" else "given",
                          table=table)
    if str(temperature).lower() == "auto":
        if y_val is None:
            raise ExportError("--temperature auto needs --calibration-data (fitted on its validation split)")
        probs_t1 = predict_probs(serving_model(base, **tta, class_bias=bias), x_val)
        t = fit_temperature(probs_t1, y_val)
        log(f"fitted temperature T = {t:.4f} on {len(y_val)} validation images")
    else:
        t = float(temperature)
    wrap = t != 1.0 or flip_tta or crop_tta or bias is not None
    model = serving_model(base, temperature=t, **tta, class_bias=bias) if wrap else base
    ref = predict_probs(model, x_val)
    summary = dict(source_model=str(model_path), source_sha256=file_sha256(model_path), temperature=t,
                   flip_tta=bool(flip_tta), crop_tta=int(crop_tta), label_names=list(label_names), validation_images=int(len(x_val)),
                   formats={})
    if crop_tta:
        summary["crop_tta_windows"] = crop_tta_windows
    if adjustment is not None:
        summary["logit_adjustment"] = adjustment
    if y_val is not None:
        from .calibration import expected_calibration_error

        summary["keras_accuracy"] = float((ref.argmax(1) == y_val).mean())
        summary["keras_ece"] = expected_calibration_error(ref, y_val)
    threshold = choose_confidence_threshold(confidence_threshold, ref, y_val, log)
    if threshold is not None:
        summary["confidence_threshold"] = threshold
    if wrap:
        wrapped = out_dir / f"{name}_serving.keras"
        model.save(wrapped)
        log(f"wrote {wrapped} (Keras model with the folded temperature/TTA/class bias)")

    failures = []
    for fmt in fmts:
        t0 = time.time()
        log(f"[{fmt}] exporting ...", flush=True)
        try:
            if fmt == "onnx":
                path = export_onnx(model, out_dir / f"{name}.onnx")
            elif fmt.startswith("tflite-"):
                mode = fmt.split("-", 1)[1]
                path = export_tflite(model, out_dir / f"{name}_{mode}.tflite", mode, rep)
            else:
                ok, why = tensorrt_available()
                if ok:
                    from fer_perception.errors import FerError

                    try:
                        path = export_tensorrt(out_dir / f"{name}.onnx")
                    except FerError as exc:  # installed but unusable (no GPU, a CUDA mismatch): not the export's fault
                        ok, why = False, f"TensorRT is installed but cannot build here ({exc})"
                if not ok:
                    log(f"[tensorrt] skipped: {why}")
                    summary["formats"][fmt] = dict(status="skipped", reason=why)
                    continue
                summary["formats"][fmt] = dict(status="exported", path=str(path), seconds=round(time.time() - t0, 1),
                                               note="engine not re-checked here (needs the GPU runtime)")
                continue
        except Exception as exc:  # report every format, fail at the end
            failures.append(f"{fmt}: {type(exc).__name__}: {exc}")
            summary["formats"][fmt] = dict(status="failed", error=str(exc))
            log(f"[{fmt}] FAILED: {exc}")
            continue
        got = Predictor(path)(x_val)
        check = compare(ref, got, y_val)
        entry = dict(status="exported", path=str(path), bytes=path.stat().st_size, sha256=file_sha256(path),
                     seconds=round(time.time() - t0, 1), **check)
        if fmt in ("onnx", "tflite-fp32"):
            entry["tolerance"] = FP32_TOLERANCE
            if check["max_abs_diff"] > FP32_TOLERANCE:
                entry["status"] = "mismatch"
                failures.append(f"{fmt}: max |dp| {check['max_abs_diff']:.2e} > {FP32_TOLERANCE:g}")
        summary["formats"][fmt] = entry
        log(f"[{fmt}] {path.name}: max|dp| {check['max_abs_diff']:.2e}, top-1 agreement "
            f"{check['top1_agreement']:.4f}" + (f", accuracy {check['accuracy']:.4f}" if "accuracy" in check else ""))

    log(format_summary(summary))
    if "onnx" in summary["formats"] and summary["formats"]["onnx"].get("status") == "exported":
        from .models import INPUT_NAME, OUTPUT_NAME, PIXEL_OFFSET, PIXEL_SCALE

        sidecar = dict(
            labels=list(label_names), input=dict(name=INPUT_NAME, dtype="float32", shape=["N", 48, 48, 1],
                                                 range=[0, 255], layout="NHWC grey",
                                                 normalisation_in_graph=f"x * {PIXEL_SCALE:.8f} + {PIXEL_OFFSET}"),
            output=dict(name=OUTPUT_NAME, dtype="float32", shape=["N", num_classes], kind="probabilities"),
            opset=ONNX_OPSET, **{k: v for k, v in summary.items() if k != "label_names"},
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        side = out_dir / f"{name}.json"
        side.write_text(json.dumps(sidecar, indent=2))
        log(f"wrote {side}")
    summary["failures"] = failures
    if failures and strict:
        raise ExportError("; ".join(failures))
    return summary


def choose_confidence_threshold(setting, probs, labels, log=print) -> float | None:
    """The sidecar's ``confidence_threshold``: None (not written), a number in [0, 1], or ``auto``:
    the lowest threshold of the validation split's risk-coverage table whose kept faces reach
    :data:`fer_training.evaluate.TARGET_KEPT_ACCURACY`."""
    if setting is None or str(setting).lower() == "none":
        return None
    if str(setting).lower() != "auto":
        try:
            value = float(setting)
        except ValueError:
            raise ExportError(f"--confidence-threshold must be a number in [0, 1], 'auto' or 'none'; got {setting!r}")
        if not 0.0 <= value <= 1.0:
            raise ExportError(f"--confidence-threshold must be in [0, 1]; got {value}")
        return value
    if labels is None:
        raise ExportError("--confidence-threshold auto needs --calibration-data (chosen on its validation split)")
    from .evaluate import TARGET_KEPT_ACCURACY, risk_coverage, suggested_threshold

    value = suggested_threshold(risk_coverage(probs, labels))
    if value is None:
        raise ExportError(f"--confidence-threshold auto: no threshold keeps faces at {TARGET_KEPT_ACCURACY:.0%} "
                          f"accuracy on the validation split; give a number")
    log(f"confidence threshold {value:.2f}: the lowest whose kept faces reach {TARGET_KEPT_ACCURACY:.0%} "
        f"accuracy on {len(labels)} validation images")
    return value


def format_summary(s: dict) -> str:
    rows = [f"{'format':<12} {'status':<9} {'size KiB':>9} {'max|dp|':>9} {'top-1 agr':>9} {'accuracy':>9} {'delta':>8}"]
    for fmt, e in s["formats"].items():
        rows.append(f"{fmt:<12} {e['status']:<9} {e.get('bytes', 0) / 1024:>9.1f} "
                    f"{e.get('max_abs_diff', float('nan')):>9.2e} {e.get('top1_agreement', float('nan')):>9.4f} "
                    f"{e.get('accuracy', float('nan')):>9.4f} {e.get('accuracy_delta', float('nan')):>+8.4f}")
    head = f"Keras reference: accuracy {s.get('keras_accuracy', float('nan')):.4f}, T={s['temperature']:.4f}, " \
           f"flip-TTA {'on' if s['flip_tta'] else 'off'}, crop-TTA {s.get('crop_tta') or 'off'}" \
           f"{' (centre window only)' if s.get('crop_tta_windows') == 'centre' else ''}, " \
           f"{s['validation_images']} images"
    return head + "\n" + "\n".join(rows)


def load_model_for_export(model_path: Path):
    """The .keras model, or ExportError with one line saying why it cannot be read."""
    from .train import load_keras_model

    if not model_path.is_file():
        raise ExportError(f"model {model_path} does not exist (fer-train writes <run-dir>/model.keras and "
                          f"<run-dir>/checkpoints/best.keras)")
    if model_path.suffix != ".keras":
        raise ExportError(f"{model_path}: fer-export reads .keras models written by fer-train, not {model_path.suffix!r}")
    try:
        return load_keras_model(model_path)
    except Exception as exc:  # Keras raises ValueError/OSError/zipfile errors for a broken file
        raise ExportError(f"cannot load {model_path} as a Keras model ({first_line(exc)})") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fer-export", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="a .keras model written by fer-train")
    p.add_argument("--out-dir", required=True, help="folder for the exported files and their sidecar")
    p.add_argument("--formats", default=DEFAULT_FORMATS, help=f"comma list of {', '.join(FORMATS)}")
    p.add_argument("--calibration-data", help="data set for int8 representative images (train split) "
                   "and the checks/temperature (validation split)")
    p.add_argument("--label-file", help="class list / mapping for --calibration-data (see fer_training.data)")
    p.add_argument("--val-split", help="validation split name (default: public_test/val/test)")
    p.add_argument("--temperature", default="1", help="a number or 'auto' (fit on the validation split)")
    p.add_argument("--flip-tta", action="store_true", help="average the logits of the image and its mirror in-graph")
    p.add_argument("--crop-tta", type=int, default=0, metavar="PIXELS",
                   help="also average the centre and four corner windows of this size, resized back "
                        "to 48x48 in-graph (mirrored too with --flip-tta: 12 views); 0 = off")
    p.add_argument("--crop-tta-windows", choices=CROP_TTA_WINDOWS, default="all",
                   help="with --crop-tta: all five windows, or the centre one alone (with --flip-tta: 4 views, "
                        "twice the default file's cost per face)")
    p.add_argument("--confidence-threshold", metavar="T|auto|none",
                   help="the fer_node confidence_threshold stored in the sidecar: a number in [0, 1], or auto "
                        "(the lowest threshold whose kept validation faces are >= 75 %% accurate; needs "
                        "--calibration-data); default: none stored")
    p.add_argument("--logit-adjust", default="0", metavar="TAU|auto",
                   help="add -TAU * log(class prior of the training split) to the logits in-graph (post-hoc "
                        "logit adjustment: lifts classes the training data has few of, e.g. disgust); auto: of TAU "
                        "0..1 (steps of 0.05), the one with the highest validation balanced accuracy among those "
                        "within 0.25 pt of the best validation accuracy; needs --calibration-data; 0 = off")
    p.add_argument("--name", help="file stem of the outputs (default: the model's)")
    p.add_argument("--summary-json", help="write the summary here too")
    args = p.parse_args(argv)
    try:
        summary = run_export(args.model, args.out_dir, formats=args.formats, calibration_data=args.calibration_data,
                             label_file=args.label_file, val_split=args.val_split, temperature=args.temperature,
                             flip_tta=args.flip_tta, crop_tta=args.crop_tta, crop_tta_windows=args.crop_tta_windows,
                             name=args.name, strict=False,
                             confidence_threshold=args.confidence_threshold, logit_adjust=args.logit_adjust)
    except (ExportError, fdata.DatasetError, FileNotFoundError) as exc:
        print(f"fer-export: {exc}", file=sys.stderr)
        return 2
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2))
    if summary["failures"]:
        print("fer-export: FAILED: " + "; ".join(summary["failures"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
