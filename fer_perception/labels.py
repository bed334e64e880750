"""The one place that fixes the emotion label order and the valence/arousal mapping.

Every model this project ships or trains outputs probabilities in ``EMOTION_LABELS`` order
(FER2013's order). Consumers read the order from the latched ``~/labels`` topic or from this
module; nobody hard-codes indices.
"""

from __future__ import annotations

import numpy as np

EMOTION_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
UNKNOWN_LABEL = "unknown"

# Pleasure (valence) and arousal of each basic emotion on the circumplex, from Mehrabian & Russell's
# PAD ratings as used in affective computing (e.g. Gebhard's ALMA model); neutral sits at the origin.
# A face's valence/arousal is the probability-weighted mean of these points, so it stays in -1..1.
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "angry": (-0.51, 0.59),
    "disgust": (-0.60, 0.35),
    "fear": (-0.64, 0.60),
    "happy": (0.81, 0.51),
    "sad": (-0.63, -0.27),
    "surprise": (0.40, 0.67),
    "neutral": (0.0, 0.0),
}
_VA_MATRIX = np.array([VALENCE_AROUSAL[name] for name in EMOTION_LABELS], dtype=np.float32)


def valence_arousal(probabilities: np.ndarray) -> np.ndarray:
    """Map class probabilities (..., 7) in ``EMOTION_LABELS`` order to (..., 2) valence/arousal."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.shape[-1] != len(EMOTION_LABELS):
        raise ValueError(
            f"expected {len(EMOTION_LABELS)} class probabilities, got shape {probabilities.shape}"
        )
    return probabilities @ _VA_MATRIX
