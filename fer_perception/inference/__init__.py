"""Emotion-model inference backends behind one interface.

    backend = create_backend("auto", "fer_perception/models/arch1_fer2013.onnx")
    probabilities = backend.predict(faces)   # float32 N x 48 x 48 x 1 (0..255) -> float32 N x K
    backend.labels                           # the K class names, from the model's sidecar

Backends (``BACKEND_NAMES``):

* ``onnxruntime`` - ONNX Runtime. Uses its TensorRT/CUDA execution providers when the installed
  onnxruntime has them, else the CPU provider; ``threads`` = intra-op threads.
* ``tensorrt`` - native TensorRT: builds an engine from the ONNX file on first start (dynamic batch
  1..max_batch; fp32/fp16/int8 with an entropy calibrator) and caches it next to the ONNX file,
  keyed by TensorRT version + GPU + precision + ONNX hash (see :mod:`.tensorrt_runtime`).
* ``tflite`` - LiteRT (ai-edge-litert, XNNPACK), the fastest CPU path measured (x86 and ARM). Given an
  .onnx path it loads the sibling ``<stem>.tflite`` / ``<stem>_fp32.tflite``, ``<stem>_fp16.tflite``
  or ``<stem>_int8.tflite``.
* ``auto`` - ``tensorrt`` when TensorRT, cuda-python and a GPU are present; else ``tflite`` when
  LiteRT is installed and the model has a .tflite sibling for the precision; else ``onnxruntime``
  (see :func:`resolve_backend_name`).

The model contract, checked at load: one input N x 48 x 48 x 1 float32 (grey pixels 0..255),
one output N x K probabilities, K and the class names in the order of the model's sidecar
(``<model>.json``, :mod:`.sidecar`; without one, FER2013's 7 in
:data:`fer_perception.labels.EMOTION_LABELS` order, with a warning).
Errors: :class:`ModelLoadError` (missing/corrupt/contract-breaking file),
:class:`InputShapeError` (bad batch), :class:`BackendUnavailableError` (unknown or unusable
backend/precision). TensorFlow is never imported here.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from fer_perception.errors import BackendUnavailableError, FerError, InputShapeError, ModelLoadError
from fer_perception.inference.runtimes import (
    PRECISIONS,
    OrtRunner,
    Runner,
    TfliteRunner,
    check_precision,
    onnxruntime_providers,
    require_file,
)
from fer_perception.inference.sidecar import ModelSidecar, file_sha256, read_sidecar, sidecar_path

log = logging.getLogger(__name__)

BACKEND_NAMES: tuple[str, ...] = ("auto", "onnxruntime", "tensorrt", "tflite")
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL_PATH = MODELS_DIR / "arch1_fer2013.onnx"
FACE_SIZE = 48
FACE_INPUT_SHAPE = (FACE_SIZE, FACE_SIZE, 1)
OUTPUT_NAME = "probabilities"

__all__ = [
    "BACKEND_NAMES", "DEFAULT_MODEL_PATH", "FACE_INPUT_SHAPE", "FACE_SIZE", "MODELS_DIR",
    "PRECISIONS", "InferenceBackend", "ModelSidecar", "available_backends", "create_backend",
    "read_sidecar", "resolve_model_path", "resolve_tflite_path", "sidecar_path", "validate_faces",
]


def validate_faces(faces) -> np.ndarray:
    """Return ``faces`` as a C-contiguous float32 N x 48 x 48 x 1 array or raise InputShapeError."""
    if not isinstance(faces, np.ndarray):
        raise InputShapeError(f"faces must be a NumPy array, got {type(faces).__name__}")
    if faces.dtype != np.float32:
        raise InputShapeError(
            f"faces must be float32 (grey 0..255), got {faces.dtype}; use "
            "fer_perception.preprocessing.to_model_input(crops)"
        )
    if faces.ndim != 4 or faces.shape[1:] != FACE_INPUT_SHAPE:
        raise InputShapeError(
            f"faces must have shape N x 48 x 48 x 1, got {faces.shape}; use "
            "fer_perception.preprocessing.to_model_input(crops)"
        )
    return np.ascontiguousarray(faces)


class InferenceBackend:
    """A loaded emotion model on one runtime. ``predict`` is the hot path: one call per frame.

    ``labels``: the model's class names in output order (its sidecar's); ``sidecar``: what was read."""

    def __init__(self, runner: Runner, *, requested: str, precision: str, model_path: Path,
                 sidecar: ModelSidecar):
        self._runner = runner
        self.name: str = runner.name
        self.requested = requested
        self.precision = precision
        self.model_path = Path(model_path)
        self.max_batch = runner.max_batch
        self.sidecar = sidecar
        self.labels: tuple[str, ...] = sidecar.labels
        self._out_index = _check_contract(runner, sidecar)
        # Warm-up and contract check in one: a zero batch must give N x K.
        probe = np.zeros((2,) + FACE_INPUT_SHAPE, np.float32)
        try:
            out = self.predict(probe)
        except InputShapeError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"{runner.path}: test inference failed: {exc}") from exc
        if out.shape != (2, self.num_classes):
            raise ModelLoadError(
                f"{runner.path}: output has shape {out.shape} for a batch of 2, expected (2, {self.num_classes})"
                f" ({_labels_origin(sidecar)})"
            )

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def runner(self) -> Runner:
        return self._runner

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """float32 N x 48 x 48 x 1 (grey 0..255) -> float32 N x K probabilities (``labels`` order)."""
        x = validate_faces(faces)
        if x.shape[0] == 0:
            return np.empty((0, self.num_classes), np.float32)
        out = self._runner.run(x)[self._out_index]
        return np.asarray(out, dtype=np.float32).reshape(x.shape[0], self.num_classes)

    def close(self) -> None:
        self._runner.close()

    def describe(self) -> dict:
        d = {"backend": self.name, "requested": self.requested, "precision": self.precision,
             "labels": list(self.labels), "sidecar": str(self.sidecar.path) if self.sidecar.path else None}
        d.update(self._runner.describe())
        return d

    def __repr__(self) -> str:
        return f"InferenceBackend({self.name}, {self.model_path.name}, {self.precision})"


def _labels_origin(sidecar: ModelSidecar) -> str:
    if sidecar.path is None:
        return "no sidecar: taken as FER2013's 7 classes; export the model with fer-export, which writes one"
    return f"{len(sidecar.labels)} labels in its sidecar {sidecar.path}"


def _check_contract(runner: Runner, sidecar: ModelSidecar) -> int:
    """Index of the probabilities output; ModelLoadError when the model breaks the contract or its
    output has another number of classes than the sidecar names."""
    k = len(sidecar.labels)
    shape = runner.input_shape
    if len(shape) != 4 or tuple(shape[1:]) != FACE_INPUT_SHAPE:
        raise ModelLoadError(
            f"{runner.path}: input {runner.input_name!r} has shape {list(shape)}, the model contract is "
            "N x 48 x 48 x 1 (grey faces, channels last)"
        )
    if len(runner.output_names) == 1:
        index = 0
    elif OUTPUT_NAME in runner.output_names:
        index = runner.output_names.index(OUTPUT_NAME)
    else:
        raise ModelLoadError(
            f"{runner.path}: {len(runner.output_names)} outputs {list(runner.output_names)} and none named "
            f"{OUTPUT_NAME!r}; the model contract is one N x K probabilities output"
        )
    out = runner.output_shapes[index]
    if len(out) != 2 or out[1] not in (None, k):
        raise ModelLoadError(
            f"{runner.path}: output {runner.output_names[index]!r} has shape {list(out)}, but the model's "
            f"labels name {k} classes ({', '.join(sidecar.labels)}; {_labels_origin(sidecar)})"
        )
    return index


def resolve_model_path(value: str | os.PathLike | None) -> Path:
    """The model file a ``model_path`` setting names: empty = the default shipped model; a bare file
    name that is not in the working directory but is one of the shipped models (for example
    ``arch1_fer2013_tta12.onnx``) = that shipped file, wherever the package is installed; anything
    else is taken as given (a missing file is reported when it is loaded)."""
    if not value:
        return DEFAULT_MODEL_PATH
    path = Path(value)
    if path.name == str(value) and not path.exists() and (MODELS_DIR / path.name).is_file():
        return MODELS_DIR / path.name
    return path


def resolve_tflite_path(model_path: str | os.PathLike, precision: str = "fp32") -> Path:
    """The .tflite file the tflite backend loads for ``model_path`` (an .onnx or .tflite path)."""
    path = Path(model_path)
    if path.suffix == ".tflite":
        return require_file(path)
    stem = path.with_suffix("")
    candidates = {
        "fp32": [stem.with_name(stem.name + ".tflite"), stem.with_name(stem.name + "_fp32.tflite")],
        "fp16": [stem.with_name(stem.name + "_fp16.tflite")],
        "int8": [stem.with_name(stem.name + "_int8.tflite")],
    }[check_precision(precision)]
    for c in candidates:
        if c.is_file():
            return c
    raise ModelLoadError(
        f"the tflite backend needs a .tflite model for {path.name} at precision {precision}: none of "
        f"{[str(c) for c in candidates]} exists (export one with the training package's fer-export)"
    )


def available_backends() -> dict[str, str | None]:
    """Each concrete backend name -> None when it can run here, else the reason it cannot."""
    from fer_perception.inference.tensorrt_runtime import tensorrt_status

    status: dict[str, str | None] = {}
    status["onnxruntime"] = None if onnxruntime_providers() else "onnxruntime is not installed"
    status["tensorrt"] = tensorrt_status()
    try:
        from fer_perception.inference.runtimes import _tflite_interpreter_class

        _tflite_interpreter_class()
        status["tflite"] = None
    except BackendUnavailableError as exc:
        status["tflite"] = str(exc)
    return status


def resolve_backend_name(name: str, model_path: str | os.PathLike | None = None, precision: str = "fp32") -> str:
    """Map 'auto' to a concrete backend; raise BackendUnavailableError for unknown names.

    ``auto``: TensorRT when it can run here; else LiteRT when it is installed and ``model_path``
    (None = only check that LiteRT is installed) has a .tflite twin for ``precision`` (or an fp32
    one, which then runs instead), because on the CPUs measured LiteRT/XNNPACK runs both the
    detector and ARCH-1 faster than ONNX Runtime (docs/BENCHMARKS.md); else ONNX Runtime.
    """
    if name not in BACKEND_NAMES:
        raise BackendUnavailableError(
            f"unknown inference backend {name!r}; valid names: {', '.join(BACKEND_NAMES)}"
        )
    if name != "auto":
        return name
    return _auto_choice(model_path, precision)[0]


def load_with_tensorrt_fallback(requested: str, concrete: str, precision: str,
                                model_path: str | os.PathLike | None, load, what: str):
    """``load(backend, precision)``; when ``auto`` chose TensorRT and it failed (import, CUDA, parse,
    build, load or first inference), one warning line and ``load`` with auto's next choice (LiteRT
    when ``model_path`` has a twin, else ONNX Runtime). The classifier and BlazeFace both go through
    here; an explicitly asked-for backend never falls back."""
    if requested != "auto" or concrete != "tensorrt":
        return load(concrete, precision)
    try:
        return load("tensorrt", precision)
    except FerError as exc:
        fallback, fallback_precision = _auto_choice(model_path, precision, tensorrt=False)
        log.warning("backend auto: TensorRT failed for %s (%s); running %s %s instead",
                    what, exc, fallback, fallback_precision)
        return load(fallback, fallback_precision)


def _auto_choice(model_path: str | os.PathLike | None, precision: str, *,
                 tensorrt: bool = True) -> tuple[str, str]:
    """What ``auto`` runs: (backend, precision). A precision nothing here can run becomes fp32.
    ``tensorrt=False``: the choice after TensorRT failed."""
    from fer_perception.inference.tensorrt_runtime import tensorrt_status

    if tensorrt and tensorrt_status() is None:
        return "tensorrt", precision
    if _tflite_available():
        if model_path is None or _has_tflite_variant(model_path, precision):
            return "tflite", precision
        if precision != "fp32" and _has_tflite_variant(model_path, "fp32"):
            return "tflite", "fp32"  # no file for this precision: the fp32 LiteRT file still beats ORT
    return "onnxruntime", precision if "TensorrtExecutionProvider" in onnxruntime_providers() else "fp32"


def _tflite_available() -> bool:
    from fer_perception.inference.runtimes import _tflite_interpreter_class

    try:
        _tflite_interpreter_class()
        return True
    except BackendUnavailableError:
        return False


def _has_tflite_variant(model_path: str | os.PathLike, precision: str) -> bool:
    """True when ``model_path`` is a .tflite file, or an .onnx file whose LiteRT twin for ``precision``
    comes from the same export: fer-export's sidecar ``<stem>.json`` lists the sha256 of every format,
    and both files must match it, so a stale .tflite next to a retrained .onnx is never picked."""
    path = Path(model_path)
    if path.suffix == ".tflite":
        return path.is_file()
    if path.suffix != ".onnx" or not path.is_file():
        return False  # a TensorRT .engine or anything else has no LiteRT twin
    try:
        twin = resolve_tflite_path(path, precision)
        formats = json.loads(sidecar_path(path).read_text())["formats"]
        return (formats["onnx"]["sha256"] == file_sha256(path)
                and formats[f"tflite-{precision}"]["sha256"] == file_sha256(twin))
    except (ModelLoadError, OSError, ValueError, KeyError, TypeError):
        return False


def create_runner(name: str, model_path, *, precision: str = "fp32", threads: int | None = None,
                  max_batch: int = 32, opt_batch: int | None = None, calibration=None,
                  cache_dir=None, providers=None, spinning: bool = False) -> Runner:
    """A generic runner for any single-input model (used by the detector too)."""
    if name == "onnxruntime":
        return OrtRunner(model_path, threads=threads, precision=precision, providers=providers,
                         cache_dir=cache_dir, spinning=spinning)
    if name == "tensorrt":
        from fer_perception.inference.tensorrt_runtime import TensorRTRunner

        return TensorRTRunner(model_path, precision=precision, max_batch=max_batch, opt_batch=opt_batch,
                              calibration=calibration, cache_dir=cache_dir)
    if name == "tflite":
        return TfliteRunner(resolve_tflite_path(model_path, precision), threads=threads)
    raise BackendUnavailableError(f"unknown inference backend {name!r}; valid names: {', '.join(BACKEND_NAMES)}")


def create_backend(
    name: str = "auto",
    model_path: str | os.PathLike = DEFAULT_MODEL_PATH,
    precision: str = "fp32",
    threads: int | None = None,
    *,
    max_batch: int = 32,
    calibration=None,
    cache_dir: str | os.PathLike | None = None,
    providers: list[str] | None = None,
    spinning: bool = False,
) -> InferenceBackend:
    """Load the emotion model on backend ``name`` (see the module doc).

    ``precision``: 'fp32' | 'fp16' | 'int8'. With ``auto`` on a machine without TensorRT, a
    precision without a matching LiteRT file falls back to fp32 (logged, and visible in
    ``describe()['requested']``); asked for explicitly, a precision a backend cannot run raises
    BackendUnavailableError.
    ``max_batch``: TensorRT profile maximum (larger batches are split). ``calibration``: int8
    representative faces for TensorRT (array N x 48 x 48 [x 1] or an .npz path).
    ``providers`` / ``spinning``: ONNX Runtime only - execution providers to use (default: TensorRT,
    CUDA when present, then CPU) and whether idle intra-op threads busy-wait (default off, see
    :class:`~fer_perception.inference.runtimes.OrtRunner`).
    """
    check_precision(precision)
    path = Path(model_path)
    if name == "auto":
        concrete, run_precision = _auto_choice(path, precision)
        if run_precision != precision:
            log.warning("backend auto: no TensorRT here and no %s file for %s, running %s fp32 instead",
                        precision, path.name, concrete)
    else:
        concrete, run_precision = resolve_backend_name(name), precision
    if concrete == "tensorrt":
        from fer_perception.inference.tensorrt_runtime import tensorrt_status

        reason = tensorrt_status()
        if reason is not None:
            raise BackendUnavailableError(f"backend 'tensorrt' is not available here: {reason}")
    def load(backend: str, run: str) -> InferenceBackend:
        if backend != "tflite":
            require_file(path)
        runner = create_runner(backend, path, precision=run, threads=threads, max_batch=max_batch,
                               calibration=calibration, cache_dir=cache_dir, providers=providers,
                               spinning=spinning)
        sidecar = read_sidecar(path)  # after the model loaded: a corrupt file is one error, not a warning first
        return InferenceBackend(runner, requested=f"{name}/{precision}", precision=run,
                                model_path=runner.path, sidecar=sidecar)

    return load_with_tensorrt_fallback(name, concrete, run_precision, path, load, path.name)
