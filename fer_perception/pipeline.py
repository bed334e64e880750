"""Per-frame perception: detect faces -> align each -> ONE batched emotion inference.

    pipeline = FacePipeline.from_options(DEFAULT_MODEL_PATH, backend="auto", detector="blazeface")
    for face in pipeline.process(frame_bgr):
        face.box, face.detection_score, face.keypoints, face.crop, face.probabilities
    pipeline.last_timings   # StageTimings(detect_ms, align_ms, infer_ms, total_ms, faces)

ROS-free and TensorFlow-free. What the node needs of a pipeline is :class:`PerceptionPipeline`
(FacePipeline implements it; tests fake it), so the node never guesses at attributes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from fer_perception.detection import Detection, FaceDetector, create_detector
from fer_perception.inference import (
    DEFAULT_MODEL_PATH,
    FACE_INPUT_SHAPE,
    InferenceBackend,
    create_backend,
)
from fer_perception.preprocessing import align_detection, align_face, box_eye_ratios_for, to_model_input

__all__ = ["DEFAULT_MODEL_PATH", "EmotionClassifier", "FaceClassifier", "FacePipeline", "FaceResult",
           "PerceptionPipeline", "PipelineInfo", "StageTimings"]

DEFAULT_MIN_FACE_SIZE = 24
DEFAULT_MAX_FACES = 8


@dataclass(frozen=True, eq=False)
class FaceResult:
    """One face of a frame.

    ``box``: (x, y, w, h) int pixels clipped to the frame; ``detection_score``: 0..1;
    ``keypoints``: K x 2 float pixels (BlazeFace: subject's right eye, left eye, nose tip, mouth,
    right ear, left ear) or None; ``crop``: the 48 x 48 uint8 aligned grey face the model saw;
    ``probabilities``: (K,) float32 in ``labels`` order (the model's class names, from its sidecar).
    """

    box: tuple[int, int, int, int]
    detection_score: float
    keypoints: np.ndarray | None
    crop: np.ndarray
    probabilities: np.ndarray
    labels: tuple[str, ...]
    #: the network that placed ``keypoints`` (BlazeFace "short"/"full", None: Haar or unknown), which
    #: picks the alignment template (fer_perception.preprocessing.alignment_for)
    keypoints_model: str | None = None

    @property
    def label(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))


@dataclass
class StageTimings:
    """Wall-clock milliseconds of the stages of the last ``process`` call."""

    detect_ms: float = 0.0
    align_ms: float = 0.0
    infer_ms: float = 0.0
    total_ms: float = 0.0
    faces: int = 0
    detections: int = 0  # before min_face_size / max_faces

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def stage_seconds(self) -> dict[str, float]:
        """{stage: seconds} of the timed stages (detect, align, infer, total)."""
        return {name[:-3]: ms * 1e-3 for name, ms in self.as_dict().items() if name.endswith("_ms")}


@dataclass(frozen=True)
class PipelineInfo:
    """What runs: for the node's start-up line and its diagnostics."""

    backend: str
    model: str
    detector: str
    detector_backend: str | None = None  # the detector's inference runtime (BlazeFace), None for Haar
    precision: str | None = None
    providers: tuple[str, ...] = ()  # ONNX Runtime execution providers, when the backend has them

    def as_dict(self) -> dict[str, str]:
        """The non-empty fields as strings (diagnostic values are strings)."""
        out = {"backend": self.backend, "model": self.model, "detector": self.detector}
        if self.detector_backend:
            out["detector_backend"] = self.detector_backend
        if self.providers:
            out["providers"] = ",".join(self.providers)
        if self.precision:
            out["precision"] = self.precision
        return out


@runtime_checkable
class PerceptionPipeline(Protocol):
    """What fer_node calls per frame and at start/stop; :class:`FacePipeline` is the real one."""

    #: the model's class names, in the order of every FaceResult's probabilities
    labels: tuple[str, ...]
    #: the model's own default confidence threshold (its sidecar's), or None
    model_confidence_threshold: float | None

    def process(self, bgr: np.ndarray) -> list[FaceResult]:
        """All faces of one BGR frame, largest first, within the face limits."""
        ...

    def info(self) -> PipelineInfo: ...

    def stage_seconds(self) -> dict[str, float]:
        """Seconds per stage of the last ``process`` call ({} before the first)."""
        ...

    def set_face_limits(self, min_face_size: int, max_faces: int) -> None:
        """Drop faces smaller than ``min_face_size`` px and keep the ``max_faces`` largest (>= 1)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class FaceClassifier(Protocol):
    """Faces aligned elsewhere in, probabilities out: what fer_node's REP-155 input mode needs (the
    faces come from another detector's topics, re-aligned by fer_perception.hri). No detector:
    :class:`EmotionClassifier` is the real one (FacePipeline implements it too)."""

    labels: tuple[str, ...]
    model_confidence_threshold: float | None

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """N x 48 x 48 uint8 aligned grey faces -> N x K float32 probabilities, in ONE inference call."""
        ...

    def info(self) -> PipelineInfo: ...

    def close(self) -> None: ...


#: PipelineInfo.detector of a classifier without a detector of its own (fer_node's input_mode rep155)
NO_DETECTOR = "none"


def _classify(backend: InferenceBackend, crops: np.ndarray) -> np.ndarray:
    """N x 48 x 48 uint8 aligned faces -> N x K probabilities, one inference call (none for N = 0)."""
    crops = np.asarray(crops)
    if crops.shape[0] == 0:
        return np.empty((0, len(backend.labels)), np.float32)
    return backend.predict(to_model_input(crops))


def _pipeline_info(backend: InferenceBackend, detector: str, detector_backend: str | None = None) -> PipelineInfo:
    described = backend.describe()
    return PipelineInfo(backend=backend.name, model=str(backend.model_path), detector=detector,
                        detector_backend=detector_backend, precision=described.get("precision"),
                        providers=tuple(described.get("providers") or ()))


class _ModelFacts:
    """What both pipelines tell about their model, read from its backend (the sidecar's labels and
    threshold), so the two cannot disagree."""

    backend: InferenceBackend

    @property
    def labels(self) -> tuple[str, ...]:
        return self.backend.labels

    @property
    def model_confidence_threshold(self) -> float | None:
        return self.backend.sidecar.confidence_threshold


@dataclass
class EmotionClassifier(_ModelFacts):
    """The emotion model alone, no face detector: a :class:`FaceClassifier` for faces that were
    found and aligned elsewhere (fer_node's input_mode rep155 follows another detector's faces, so
    it loads no detector model at all)."""

    backend: InferenceBackend

    @classmethod
    def from_options(cls, model_path: str | os.PathLike = DEFAULT_MODEL_PATH, backend: str = "auto",
                     precision: str = "fp32", threads: int | None = None, *,
                     max_batch: int = DEFAULT_MAX_FACES) -> "EmotionClassifier":
        return cls(create_backend(backend, Path(model_path), precision=precision, threads=threads,
                                  max_batch=max_batch))

    def classify(self, crops: np.ndarray) -> np.ndarray:
        return _classify(self.backend, crops)

    def info(self) -> PipelineInfo:
        return _pipeline_info(self.backend, NO_DETECTOR)

    def describe(self) -> dict:
        return {"detector": None, "backend": self.backend.describe()}

    def close(self) -> None:
        self.backend.close()


def _int_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    x0 = int(round(min(max(box[0], 0.0), width)))
    y0 = int(round(min(max(box[1], 0.0), height)))
    x1 = int(round(min(max(box[0] + box[2], 0.0), width)))
    y1 = int(round(min(max(box[1] + box[3], 0.0), height)))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


@dataclass
class FacePipeline(_ModelFacts):
    """detector + emotion backend. ``process(bgr)`` runs all faces of a frame in one batch.

    ``min_face_size``: detections whose box is smaller than this many pixels (shorter side) are
    dropped; ``max_faces``: at most this many faces per frame, the largest boxes first. Results are
    ordered largest face first. Both attributes may be changed between frames.
    """

    detector: FaceDetector
    backend: InferenceBackend
    min_face_size: int = DEFAULT_MIN_FACE_SIZE
    max_faces: int = DEFAULT_MAX_FACES
    last_timings: StageTimings = field(default_factory=StageTimings, init=False)

    def __post_init__(self):
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {self.max_faces}")
        if self.min_face_size < 0:
            raise ValueError(f"min_face_size must be >= 0, got {self.min_face_size}")
        self._batch = np.empty((self.max_faces,) + FACE_INPUT_SHAPE, np.float32)
        self._box_eye_ratios = box_eye_ratios_for(self.detector)

    @classmethod
    def from_options(
        cls,
        model_path: str | os.PathLike = DEFAULT_MODEL_PATH,
        backend: str = "auto",
        detector: str = "blazeface",
        precision: str = "fp32",
        threads: int | None = None,
        *,
        min_face_size: int = DEFAULT_MIN_FACE_SIZE,
        max_faces: int = DEFAULT_MAX_FACES,
        max_batch: int | None = None,
        calibration=None,
        detector_options: dict | None = None,
    ) -> "FacePipeline":
        """Build detector + backend by name. ``threads`` applies to both (intra-op threads);
        BlazeFace runs on the same backend family (``detector_options`` may override, e.g.
        ``{"backend": "onnxruntime", "tiles": (2, 1)}``); ``max_batch`` defaults to max_faces."""
        det_opts = dict(detector_options or {})
        if detector == "blazeface":
            det_opts.setdefault("backend", backend)
            det_opts.setdefault("threads", threads)
        det = create_detector(detector, **det_opts)
        be = create_backend(backend, Path(model_path), precision=precision, threads=threads,
                            max_batch=max_batch or max_faces, calibration=calibration)
        return cls(det, be, min_face_size=min_face_size, max_faces=max_faces)

    def describe(self) -> dict:
        return {"detector": self.detector.describe(), "backend": self.backend.describe(),
                "min_face_size": self.min_face_size, "max_faces": self.max_faces}

    # --- PerceptionPipeline ----------------------------------------------------------------------
    def info(self) -> PipelineInfo:
        return _pipeline_info(self.backend, self.detector.name, self.detector.backend)

    def stage_seconds(self) -> dict[str, float]:
        return self.last_timings.stage_seconds() if self.last_timings.total_ms else {}

    def set_face_limits(self, min_face_size: int, max_faces: int) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if min_face_size < 0:
            raise ValueError(f"min_face_size must be >= 0, got {min_face_size}")
        self.min_face_size, self.max_faces = int(min_face_size), int(max_faces)

    def close(self) -> None:
        """Release the runtimes' device resources (TensorRT); a no-op on CPU runtimes."""
        self.backend.close()
        self.detector.close()

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """FaceClassifier: one batched inference of faces aligned elsewhere (N x 48 x 48 uint8)."""
        return _classify(self.backend, crops)

    def select(self, detections: list[Detection]) -> list[Detection]:
        """The detections ``process`` keeps: large enough, the ``max_faces`` largest, largest first."""
        kept = [d for d in detections if min(d.box[2], d.box[3]) >= self.min_face_size]
        kept.sort(key=lambda d: -d.area)
        return kept[: self.max_faces]

    def process(self, bgr: np.ndarray) -> list[FaceResult]:
        t0 = time.perf_counter()
        detections = self.detector.detect(bgr)
        t1 = time.perf_counter()
        faces = self.select(detections)
        if len(faces) > len(self._batch):  # max_faces was raised after construction
            self._batch = np.empty((len(faces),) + FACE_INPUT_SHAPE, np.float32)
        height, width = bgr.shape[:2]
        crops = []
        for i, det in enumerate(faces):
            crop = (align_detection(bgr, det) if det.model is not None else
                    align_face(bgr, det.box, det.keypoints, box_eye_ratios=self._box_eye_ratios))
            self._batch[i, :, :, 0] = crop
            crops.append(crop)
        t2 = time.perf_counter()
        if faces:
            probs = self.backend.predict(self._batch[: len(faces)])
        else:
            probs = np.empty((0, len(self.labels)), np.float32)
        t3 = time.perf_counter()
        results = [
            FaceResult(box=_int_box(det.box, width, height), detection_score=float(det.score),
                       keypoints=det.keypoints, crop=crop, probabilities=probs[i], labels=self.labels,
                       keypoints_model=det.model)
            for i, (det, crop) in enumerate(zip(faces, crops))
        ]
        t4 = time.perf_counter()
        self.last_timings = StageTimings(
            detect_ms=(t1 - t0) * 1e3, align_ms=(t2 - t1) * 1e3, infer_ms=(t3 - t2) * 1e3,
            total_ms=(t4 - t0) * 1e3, faces=len(results), detections=len(detections))
        return results
