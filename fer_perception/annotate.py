"""Drawing of recognised faces onto a BGR image: box, track id, label, confidence bar and the
per-class probability bars. Pure OpenCV + NumPy (no rclpy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from fer_perception.labels import UNKNOWN_LABEL, canonical_label

# BGR colour per canonical label (unknown = grey; a name the label table does not know: green).
LABEL_COLOURS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 60),
    "fear": (160, 60, 160),
    "happy": (40, 200, 240),
    "sad": (200, 120, 40),
    "surprise": (230, 170, 250),
    "neutral": (200, 200, 200),
    "contempt": (60, 110, 180),
    UNKNOWN_LABEL: (128, 128, 128),
}

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class FaceAnnotation:
    box: tuple[int, int, int, int]  # x, y, w, h
    label: str
    confidence: float
    track_id: int = 0
    probabilities: Sequence[float] | None = None


def label_colour(label: str) -> tuple[int, int, int]:
    return LABEL_COLOURS.get(label if label == UNKNOWN_LABEL else canonical_label(label) or "", (0, 255, 0))


def draw_faces(
    bgr: np.ndarray,
    faces: Sequence[FaceAnnotation],
    labels: Sequence[str],
    *,
    copy: bool = True,
    show_probabilities: bool = True,
) -> np.ndarray:
    """Return ``bgr`` (a copy unless ``copy=False``) with every face drawn on it; ``labels`` names the
    probability bars (the model's class names, in the order of each face's probabilities)."""
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR image, got {bgr.shape} {bgr.dtype}")
    out = bgr.copy() if copy else bgr
    h_img, w_img = out.shape[:2]
    scale = max(0.35, min(0.8, h_img / 900.0))
    thick = 1 if h_img < 600 else 2
    for face in faces:
        x, y, w, h = (int(round(v)) for v in face.box)
        colour = label_colour(face.label)
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thick + 1)

        # Caption "#id label 87%" on a filled strip above the box (below it at the top edge).
        caption = f"#{face.track_id} {face.label} {face.confidence * 100:.0f}%"
        (tw, th), base = cv2.getTextSize(caption, _FONT, scale, thick)
        cy = y - 4 if y - th - base - 4 >= 0 else y + h + th + 4
        cv2.rectangle(out, (x, cy - th - 2), (x + tw + 4, cy + base), colour, cv2.FILLED)
        cv2.putText(out, caption, (x + 2, cy - 1), _FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)

        # Confidence bar along the bottom edge of the box.
        bar_h = max(3, h // 20)
        by = min(h_img - 1, y + h + 2)
        cv2.rectangle(out, (x, by), (x + w, by + bar_h), (60, 60, 60), cv2.FILLED)
        filled = int(round(w * float(np.clip(face.confidence, 0.0, 1.0))))
        if filled > 0:
            cv2.rectangle(out, (x, by), (x + filled, by + bar_h), colour, cv2.FILLED)

        # One small bar per class to the right of the box (left if it does not fit).
        if show_probabilities and face.probabilities is not None and len(face.probabilities) == len(labels):
            row_h = max(8, int(14 * scale / 0.5))
            small = scale * 0.7
            bar_w = max(30, w // 2)
            text_w = cv2.getTextSize("surprise", _FONT, small, 1)[0][0]
            px = x + w + 6
            if px + text_w + bar_w + 6 > w_img:
                px = max(0, x - text_w - bar_w - 12)
            for i, (name, p) in enumerate(zip(labels, face.probabilities)):
                ry = y + i * row_h
                if ry + row_h > h_img:
                    break
                cv2.putText(out, name, (px, ry + row_h - 3), _FONT, small, (255, 255, 255), 1, cv2.LINE_AA)
                bx = px + text_w + 4
                cv2.rectangle(out, (bx, ry + 2), (bx + bar_w, ry + row_h - 2), (60, 60, 60), cv2.FILLED)
                fill = int(round(bar_w * float(np.clip(p, 0.0, 1.0))))
                if fill > 0:
                    cv2.rectangle(out, (bx, ry + 2), (bx + fill, ry + row_h - 2), label_colour(name), cv2.FILLED)
    return out
