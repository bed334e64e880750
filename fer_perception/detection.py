"""Face detection behind one small interface.

    detector = create_detector("blazeface")          # or "haar"; options are keyword arguments
    for det in detector.detect(bgr):                 # bgr: H x W x 3 uint8
        det.box        # (x, y, w, h) float pixels, clipped to the image
        det.score      # 0..1
        det.keypoints  # 6 x 2 float pixels (BlazeFace) or None (Haar)
        det.right_eye, det.left_eye   # (2,) pixels or None

Keypoints follow MediaPipe's order (:data:`KEYPOINT_NAMES`). "Right" and "left" are the SUBJECT's:
the right eye is the person's own right eye, which is on the image's LEFT in an unmirrored camera
image (so normally ``right_eye[0] < left_eye[0]``).

Detectors (:data:`DETECTOR_NAMES`):

* ``blazeface`` (default) - MediaPipe BlazeFace short range (~1 ms per 128 px view) or full range
  (``model="full"``, 192 px views, smaller faces), 6 keypoints, with tiling pyramids and a
  tracking-guided scan (see :mod:`fer_perception.blazeface`).
* ``haar`` - OpenCV's frontal-face Haar cascade, no extra dependency, no keypoints (alignment then
  estimates the eyes from the box: :func:`fer_perception.preprocessing.estimate_eyes`); tens of ms
  per 640 x 480 frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from fer_perception.errors import DetectorError

KEYPOINT_NAMES: tuple[str, ...] = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")
RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)
DETECTOR_NAMES: tuple[str, ...] = ("blazeface", "haar")


@dataclass(frozen=True, eq=False)
class Detection:
    """One face: ``box`` (x, y, w, h) float pixels clipped to the image, ``score`` 0..1,
    ``keypoints`` K x 2 float pixels in :data:`KEYPOINT_NAMES` order (not clipped: an ear may lie
    outside the frame) or None."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None = field(default=None)
    #: the network that placed the keypoints ("short" / "full" BlazeFace), None for Haar: alignment
    #: uses the template measured for it (fer_perception.preprocessing.TEMPLATES)
    model: str | None = None

    def _point(self, index: int) -> np.ndarray | None:
        if self.keypoints is None or len(self.keypoints) <= index:
            return None
        return self.keypoints[index]

    @property
    def right_eye(self) -> np.ndarray | None:
        """The subject's right eye (image left in an unmirrored image), (x, y) pixels, or None."""
        return self._point(RIGHT_EYE)

    @property
    def left_eye(self) -> np.ndarray | None:
        """The subject's left eye (image right in an unmirrored image), (x, y) pixels, or None."""
        return self._point(LEFT_EYE)

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    def __repr__(self) -> str:
        x, y, w, h = self.box
        kp = "none" if self.keypoints is None else f"{len(self.keypoints)} points"
        return f"Detection(box=({x:.1f}, {y:.1f}, {w:.1f}, {h:.1f}), score={self.score:.3f}, keypoints={kp})"


@runtime_checkable
class FaceDetector(Protocol):
    name: str
    #: inference runtime the detector runs on (``onnxruntime``, ``tflite``, ...), None for OpenCV's Haar
    backend: str | None

    def detect(self, bgr: np.ndarray) -> list[Detection]: ...

    def describe(self) -> dict: ...

    def close(self) -> None:
        """Release runtime resources (device memory of a TensorRT detector)."""
        ...


HAAR_CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    """OpenCV Haar cascade (frontal face). No keypoints. Score: the cascade has no calibrated
    confidence; ``n / (n + min_neighbors)`` of the n merged neighbour hits is used (>= 0.5 for every
    reported face, higher = more hits). ``max_side`` (default 640) downsizes larger frames first.
    """

    name = "haar"
    backend = None  # OpenCV's cascade, no inference runtime

    def __init__(self, *, cascade: str | None = None, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: int = 30, max_side: int | None = 640):
        path = cascade or (cv2.data.haarcascades + HAAR_CASCADE)
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise DetectorError(f"cannot load Haar cascade {path}")
        if scale_factor <= 1.0:
            raise DetectorError(f"scale_factor must be > 1, got {scale_factor}")
        self.cascade_path = path
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.max_side = max_side

    def close(self) -> None:
        """Nothing to release (the cascade is freed with the object)."""

    def describe(self) -> dict:
        return {"detector": self.name, "cascade": self.cascade_path, "scale_factor": self.scale_factor,
                "min_neighbors": self.min_neighbors, "min_size": self.min_size, "max_side": self.max_side,
                "opencv": cv2.__version__}

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim not in (2, 3):
            raise DetectorError(f"detect() needs a uint8 H x W x 3 image, got {getattr(bgr, 'shape', type(bgr))}")
        grey = bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY if bgr.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        height, width = grey.shape
        scale = 1.0
        if self.max_side and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        rects, neighbours = self._cascade.detectMultiScale2(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size))
        result = []
        for (x, y, w, h), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(neighbours).reshape(-1)):
            x0, y0 = max(0.0, x / scale), max(0.0, y / scale)
            x1, y1 = min(float(width), (x + w) / scale), min(float(height), (y + h) / scale)
            score = float(n) / (float(n) + self.min_neighbors) if self.min_neighbors > 0 else 1.0
            result.append(Detection(box=(x0, y0, x1 - x0, y1 - y0), score=score, keypoints=None))
        result.sort(key=lambda d: -d.score)
        return result


def create_detector(name: str = "blazeface", **options) -> FaceDetector:
    """A face detector by name (:data:`DETECTOR_NAMES`); ``options`` go to its constructor
    (:class:`fer_perception.blazeface.BlazeFaceDetector` or :class:`HaarDetector`)."""
    if name == "blazeface":
        from fer_perception.blazeface import BlazeFaceDetector

        try:
            return BlazeFaceDetector(**options)
        except TypeError as exc:
            raise DetectorError(f"bad option for detector 'blazeface': {exc}") from exc
    if name == "haar":
        try:
            return HaarDetector(**options)
        except TypeError as exc:
            raise DetectorError(f"bad option for detector 'haar': {exc}") from exc
    raise DetectorError(f"unknown face detector {name!r}; valid names: {', '.join(DETECTOR_NAMES)}")
