"""The per-frame work of fer_node, without ROS: pipeline -> face limits -> tracking -> smoothing.

    perception = FramePerception(pipeline, FaceTracker.from_params(values), SmoothingConfig.from_params(values))
    faces = perception.process(frame_bgr)      # list[PerceivedFace], largest first
    faces[0].track_id, faces[0].label, faces[0].confidence, faces[0].valence

fer_perception.ros.node owns the ROS plumbing (subscriptions, publishers, lifecycle, parameters)
and calls this object once per frame from its worker thread; parameter callbacks run on the
executor's thread, so changes that must not land mid-frame (smoothing, a track reset) are queued
and applied at the start of the next frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from fer_perception.errors import FerError
from fer_perception.inference import resolve_model_path
from fer_perception.labels import valence_arousal
from fer_perception.params import load_specs
from fer_perception.pipeline import EmotionClassifier, FacePipeline, PerceptionPipeline
from fer_perception.smoothing import SmoothingConfig, TrackSmoother
from fer_perception.tracking import FaceTracker, select_faces

NODE_KEY = "fer_node"

#: fer_node parameters that build the pipeline (read-only: fixed at start-up).
PIPELINE_OPTIONS = ("input_mode", "model_path", "backend", "detector", "precision", "threads", "min_face_size",
                    "max_faces",
                    "detector_model", "detector_whole_frame_model", "detector_tiles", "detector_scan_frames", "detector_track_regions",
                    "detector_track_model", "detector_score_threshold", "detector_tile_score_threshold")
#: fer_node parameter -> BlazeFace option (fer_perception.blazeface.BlazeFaceDetector)
DETECTOR_PARAMS = {"detector_model": "model", "detector_whole_frame_model": "whole_frame_model",
                   "detector_tiles": "tiles", "detector_scan_frames": "scan_frames",
                   "detector_track_regions": "max_track_regions", "detector_track_model": "track_model",
                   "detector_score_threshold": "score_threshold",
                   "detector_tile_score_threshold": "tile_score_threshold"}


def parse_tiles(text: str) -> list[tuple[int, int]] | None:
    """'' -> None; '2x2' -> [(2, 2)]; '2x2,4x3' -> a pyramid [(2, 2), (4, 3)] (cols x rows per level)."""
    from fer_perception.errors import DetectorError

    text = str(text).replace(" ", "")
    if not text:
        return None
    levels = []
    for part in text.split(","):
        cols, sep, rows = part.lower().partition("x")
        if not sep or not cols.isdigit() or not rows.isdigit():
            raise DetectorError(f"detector_tiles must look like '2x2' or '2x2,4x3', got {text!r}")
        levels.append((int(cols), int(rows)))
    return levels


def detector_options_from_params(options: Mapping[str, Any]) -> dict:
    """BlazeFace options from fer_node's detector_* parameters (missing ones: config/fer.yaml's defaults)."""
    specs = load_specs(NODE_KEY)
    values = {name: options.get(name, specs[name].default) for name in DETECTOR_PARAMS}
    out = {DETECTOR_PARAMS[name]: value for name, value in values.items()}
    out["tiles"] = parse_tiles(out["tiles"])
    return out


def max_faces_capacity() -> int:
    """Largest allowed max_faces (the upper end of its range in config/fer.yaml): the pipeline's
    batch is sized for it, so max_faces can change live."""
    spec = load_specs(NODE_KEY)["max_faces"]
    return int(spec.range[1]) if spec.range else 64


def pipeline_from_params(options: Mapping[str, Any]) -> FacePipeline | EmotionClassifier:
    """FacePipeline from fer_node's parameters (model_path '' = the shipped model); with
    ``input_mode: rep155`` the emotion model alone (EmotionClassifier): the faces come from another
    detector, so no detector is built and none of the detector_* options are read."""
    if options.get("input_mode") == "rep155":
        return EmotionClassifier.from_options(
            resolve_model_path(options["model_path"]), backend=options["backend"], precision=options["precision"],
            threads=options["threads"] or None, max_batch=max_faces_capacity())
    return FacePipeline.from_options(
        resolve_model_path(options["model_path"]),
        backend=options["backend"],
        detector=options["detector"],
        precision=options["precision"],
        threads=options["threads"] or None,
        min_face_size=options["min_face_size"],
        max_faces=max_faces_capacity(),
        detector_options=detector_options_from_params(options) if options["detector"] == "blazeface" else None,
    )


@dataclass(frozen=True, eq=False)
class PerceivedFace:
    """One face as fer_node publishes it.

    ``box``: (x, y, w, h) int pixels inside the frame; ``probabilities``: smoothed, in the order of
    the pipeline's ``labels`` (the model's sidecar); ``label``/``confidence``: after smoothing, hysteresis and the confidence threshold
    (``unknown`` below it); ``valence``/``arousal``: -1..1 from the smoothed probabilities.
    """

    box: tuple[int, int, int, int]
    label: str
    confidence: float
    probabilities: np.ndarray
    track_id: int
    valence: float
    arousal: float
    detection_score: float
    keypoints: np.ndarray | None = None  # the detector's K x 2 pixel keypoints (BlazeFace), if any
    keypoints_model: str | None = None  # the network that placed them (its alignment template)


class FramePerception:
    """One frame in, the tracked and smoothed faces out. Not thread-safe for ``process`` (one worker
    calls it); the ``set_*``/``request_*`` methods may be called from other threads."""

    def __init__(self, pipeline: PerceptionPipeline, tracker: FaceTracker, smoothing: SmoothingConfig, *,
                 min_face_size: int = 0, max_faces: int = 0) -> None:
        self.pipeline = pipeline
        self.tracker = tracker
        #: the model's class names: the only label order this object knows (the pipeline's)
        self.labels: tuple[str, ...] = tuple(pipeline.labels)
        self.smoother = TrackSmoother(self._with_labels(smoothing))
        self._lock = threading.Lock()
        self._pending_smoothing: SmoothingConfig | None = None
        self._reset_pending = False
        self.min_face_size = 0
        self.max_faces = 0
        self.set_face_limits(min_face_size, max_faces)

    # --- changes from other threads ------------------------------------------------------------
    def set_face_limits(self, min_face_size: int, max_faces: int) -> None:
        """Faces smaller than ``min_face_size`` px are dropped; at most ``max_faces`` (0 = as many as
        the pipeline's batch holds), largest first. Also tells the pipeline, so it skips them before
        inference."""
        self.min_face_size, self.max_faces = int(min_face_size), int(max_faces)
        self.pipeline.set_face_limits(self.min_face_size, self.max_faces if self.max_faces > 0 else max_faces_capacity())

    def _with_labels(self, config: SmoothingConfig) -> SmoothingConfig:
        return replace(config, labels=self.labels)

    def set_smoothing(self, config: SmoothingConfig) -> None:
        """New smoothing/hysteresis/threshold settings, applied from the next frame on."""
        with self._lock:
            self._pending_smoothing = self._with_labels(config)

    def request_reset(self) -> None:
        """Forget every track before the next frame (perception was switched off and on)."""
        with self._lock:
            self._reset_pending = True

    # --- the frame ------------------------------------------------------------------------------
    def _apply_pending(self) -> None:
        with self._lock:
            config, self._pending_smoothing = self._pending_smoothing, None
            reset, self._reset_pending = self._reset_pending, False
        if reset:
            self.smoother.forget([t.track_id for t in self.tracker.tracks])
            self.tracker.reset()
        if config is not None:
            self.smoother.reconfigure(config)

    def process(self, bgr: np.ndarray) -> list[PerceivedFace]:
        """The faces of one BGR frame. Raises whatever the pipeline raises, and FerError when the
        model returns something other than one finite probability per label."""
        self._apply_pending()
        results = list(self.pipeline.process(bgr))
        for r in results:
            probs = np.asarray(r.probabilities, dtype=np.float32)
            if probs.shape != (len(self.labels),) or not np.all(np.isfinite(probs)):
                raise FerError(f"the model returned invalid probabilities {probs.tolist()} "
                               f"(expected {len(self.labels)} finite values)")
        # The pipeline applies the limits too; this keeps them exact for any PerceptionPipeline.
        keep = select_faces([tuple(r.box) for r in results], self.min_face_size, self.max_faces)
        results = [results[i] for i in keep]
        update = self.tracker.update([tuple(r.box) for r in results])
        self.smoother.forget(update.removed_ids)

        height, width = bgr.shape[:2]
        faces = []
        for r, track_id in zip(results, update.ids):
            s = self.smoother.update(track_id, r.probabilities)
            valence, arousal = valence_arousal(s.probabilities, self.labels)
            x, y, w, h = (int(v) for v in r.box)
            x0, y0 = min(max(x, 0), width), min(max(y, 0), height)
            x1, y1 = min(max(x + w, 0), width), min(max(y + h, 0), height)
            faces.append(PerceivedFace(
                box=(x0, y0, x1 - x0, y1 - y0), label=s.label, confidence=float(s.confidence),
                probabilities=s.probabilities, track_id=int(track_id), valence=float(valence),
                arousal=float(arousal), detection_score=float(r.detection_score),
                keypoints=r.keypoints, keypoints_model=r.keypoints_model))
        return faces

    def stage_seconds(self) -> dict[str, float]:
        return self.pipeline.stage_seconds()
