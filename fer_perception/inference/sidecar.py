"""The model's sidecar (``<model>.json``, written by fer-export): the one source of its class names.

Their order, their count and their names come from the sidecar's ``labels`` list; nothing in the
runtime assumes FER2013's seven. One rule finds the sidecar of every file of an export::

    my_model/model.onnx                 -> my_model/model.json
    my_model/model_fp32.tflite          -> my_model/model.json   (also _fp16, _int8)
    my_model/model.tflite               -> my_model/model.json
    my_model/model.fp16.b8.1a2b3c.engine -> my_model/model.json  (a cached TensorRT engine)

The TensorRT runner writes a build-info file beside each engine it caches
(``model.fp16.b8.1a2b3c.engine.build.json``); the rule never lands on it, and a sidecar without a
valid ``labels`` list is an error, not a silent FER2013 order.

A model without a sidecar is taken as FER2013's order (``fer_perception.labels.EMOTION_LABELS``), with
one warning per file; whether its output really has that many classes is checked when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_perception.errors import ModelLoadError
from fer_perception.labels import EMOTION_LABELS

log = logging.getLogger("fer_perception.inference")

#: LiteRT twins of one export: ``<stem>_fp32.tflite`` etc. (fer-export's names).
_PRECISION_SUFFIX = re.compile(r"_(fp32|fp16|int8)$")
#: A TensorRT engine cached by the runner: ``<stem>.<precision>.b<max batch>.<key>.engine``.
_ENGINE_NAME = re.compile(r"^(?P<stem>.+)\.(fp32|fp16|int8)\.b\d+(\.o\d+)?\.[0-9a-f]+$")
_MODEL_SUFFIXES = (".onnx", ".tflite", ".engine", ".plan")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks: what a sidecar records for each format."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_warned_without_sidecar: set[str] = set()


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``<export stem>.json`` beside ``model_path`` (see the module doc for the rule)."""
    path = Path(model_path)
    stem = path.name[: -len(path.suffix)] if path.suffix in _MODEL_SUFFIXES else path.name
    if path.suffix in (".engine", ".plan"):
        m = _ENGINE_NAME.match(stem)
        if m:
            stem = m.group("stem")
    elif path.suffix == ".tflite":
        stem = _PRECISION_SUFFIX.sub("", stem)
    return path.with_name(stem + ".json")


@dataclass(frozen=True)
class ModelSidecar:
    """What the runtime reads from a sidecar. ``path`` is None when the model has none."""

    path: Path | None
    labels: tuple[str, ...]
    confidence_threshold: float | None = None  # the model's own default for fer_node's parameter
    flip_tta: bool = False  # the graph already averages each face with its mirror (fer-export --flip-tta)


def _labels_of(data: Any, where: Path) -> tuple[str, ...]:
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels):
        raise ModelLoadError(f"{where}: 'labels' must be a non-empty list of class names (the model's output "
                             f"order); got {labels!r}")
    names = tuple(x.strip() for x in labels)
    if len(set(names)) != len(names):
        raise ModelLoadError(f"{where}: 'labels' names a class twice: {list(names)}")
    return names


def read_sidecar(model_path: str | os.PathLike) -> ModelSidecar:
    """The sidecar of ``model_path``; FER2013's labels (one warning) when there is none.

    Raises ModelLoadError for a sidecar that exists but cannot be used (unreadable, not JSON, no
    valid ``labels``, a ``confidence_threshold`` outside 0..1)."""
    path = sidecar_path(model_path)
    if not path.is_file():
        key = str(Path(model_path))
        if key not in _warned_without_sidecar:
            _warned_without_sidecar.add(key)
            log.warning("%s has no sidecar %s: taking its classes as FER2013's %d in that order (%s)",
                        Path(model_path).name, path.name, len(EMOTION_LABELS), ", ".join(EMOTION_LABELS))
        return ModelSidecar(path=None, labels=EMOTION_LABELS)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: the model's sidecar is not readable JSON ({exc})") from None
    labels = _labels_of(data, path)
    threshold = data.get("confidence_threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
                math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise ModelLoadError(f"{path}: confidence_threshold must be a number in [0, 1]; got {threshold!r}")
        threshold = float(threshold)
    flip_tta = data.get("flip_tta", False)
    if not isinstance(flip_tta, bool):
        raise ModelLoadError(f"{path}: flip_tta must be true or false; got {flip_tta!r}")
    return ModelSidecar(path=path, labels=labels, confidence_threshold=threshold, flip_tta=flip_tta)
