"""Class names, their circumplex points and the one table that maps data sets' names onto them.

A model's own class names and their order come from its sidecar (fer_perception.inference.sidecar);
nothing here fixes an order for a model. :data:`EMOTION_LABELS` is FER2013's order: the shipped
model's, and the order assumed (with a warning) for a model that has no sidecar.

Names are kept as the model names them (a CK+ model publishes ``anger``, ``sadness``, ``contempt``);
:data:`CANONICAL_NAMES` is the explicit, documented table that says which basic emotion a name means,
used for valence/arousal here and by anyone who needs the canonical name (training's --fer-order).
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

EMOTION_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
UNKNOWN_LABEL = "unknown"

#: Names seen in public FER data sets (lower case) -> this project's canonical name. CK+'s
#: ``contempt`` and FER+'s ``contempt`` keep their own name (no FER2013 class means it).
CANONICAL_NAMES: dict[str, str] = {
    "angry": "angry", "anger": "angry", "an": "angry",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "fe": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "ha": "happy",
    "sad": "sad", "sadness": "sad", "sa": "sad",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise",
    "neutral": "neutral", "ne": "neutral", "calm": "neutral",
    "contempt": "contempt", "co": "contempt",
}

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
#: Where a class with no circumplex point in VALENCE_AROUSAL (e.g. ``contempt``, or a name the table
#: does not know) sits: the origin, like neutral. Its probability then pulls valence and arousal
#: towards 0 instead of adding a made-up direction.
NO_CIRCUMPLEX_POINT: tuple[float, float] = (0.0, 0.0)


def canonical_label(name: str) -> str | None:
    """The canonical name of a data set's or model's class name, or None when the table lacks it."""
    return CANONICAL_NAMES.get(str(name).strip().lower())


def circumplex_point(name: str) -> tuple[float, float]:
    """(valence, arousal) of one class name; NO_CIRCUMPLEX_POINT for a name without one."""
    return VALENCE_AROUSAL.get(canonical_label(name) or "", NO_CIRCUMPLEX_POINT)


@functools.lru_cache(maxsize=32)
def _va_matrix(labels: tuple[str, ...]) -> np.ndarray:
    return np.array([circumplex_point(name) for name in labels], dtype=np.float32).reshape(len(labels), 2)


def valence_arousal(probabilities: np.ndarray, labels: Sequence[str] = EMOTION_LABELS) -> np.ndarray:
    """Map class probabilities (..., K) in ``labels`` order to (..., 2) valence/arousal."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    labels = tuple(labels)
    if probabilities.shape[-1] != len(labels):
        raise ValueError(f"expected {len(labels)} class probabilities ({', '.join(labels)}), "
                         f"got shape {probabilities.shape}")
    return probabilities @ _va_matrix(labels)
