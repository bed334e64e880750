"""Per-track temporal smoothing of class probabilities, with hysteresis on label changes.

Pure Python + NumPy (no rclpy).

Per track, the probabilities of successive frames are smoothed either exponentially
(``method="ema"``: s = alpha * p + (1 - alpha) * s) or with a moving average over the last
``window`` frames (``method="window"``); ``method="none"`` passes them through. The smoothed vector
still sums to 1.

The published label is sticky: a track keeps its label until another class beats it in the
smoothed probabilities by at least ``hysteresis_margin`` for ``hysteresis_frames`` consecutive
frames, so a one-frame blip never flips the label. When the probability of the held label falls
below ``confidence_threshold`` the label reads ``unknown`` (the class it holds is kept underneath,
so it comes back without a new hysteresis wait once the confidence recovers).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

import numpy as np

from fer_perception.labels import EMOTION_LABELS, UNKNOWN_LABEL

SMOOTHING_METHODS = ("ema", "window", "none")


# SmoothingConfig field -> fer_node parameter (config/fer.yaml holds the defaults, nowhere else).
PARAMETER_NAMES: dict[str, str] = {
    "method": "smoothing",
    "alpha": "smoothing_alpha",
    "window": "smoothing_window",
    "hysteresis_margin": "hysteresis_margin",
    "hysteresis_frames": "hysteresis_frames",
    "confidence_threshold": "confidence_threshold",
}


@dataclass(frozen=True)
class SmoothingConfig:
    """Every value is given explicitly: the defaults live in config/fer.yaml (see
    :meth:`from_params` / :meth:`from_yaml_defaults`)."""

    method: str  # ema | window | none
    alpha: float  # ema: weight of the newest frame (1 = no smoothing)
    window: int  # window: frames averaged
    hysteresis_margin: float  # a new label must beat the held one by this much ...
    hysteresis_frames: int  # ... for this many consecutive frames
    confidence_threshold: float  # below: label is "unknown"
    labels: tuple[str, ...] = EMOTION_LABELS

    @classmethod
    def from_params(cls, values: Mapping[str, object], **overrides) -> "SmoothingConfig":
        """From fer_node parameter values ({'smoothing': 'ema', 'smoothing_alpha': 0.5, ...})."""
        kw = {field: values[param] for field, param in PARAMETER_NAMES.items()}
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def from_yaml_defaults(cls, **overrides) -> "SmoothingConfig":
        """The defaults of config/fer.yaml, with ``overrides`` (field names) applied."""
        from fer_perception.params import defaults

        return cls.from_params(defaults("fer_node"), **overrides)

    def __post_init__(self) -> None:
        if self.method not in SMOOTHING_METHODS:
            raise ValueError(f"smoothing method must be one of {SMOOTHING_METHODS}, got {self.method!r}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1], got {self.alpha}")
        if self.window < 1:
            raise ValueError(f"smoothing window must be >= 1, got {self.window}")
        if not 0.0 <= self.hysteresis_margin <= 1.0:
            raise ValueError(f"hysteresis margin must be in [0, 1], got {self.hysteresis_margin}")
        if self.hysteresis_frames < 1:
            raise ValueError(f"hysteresis frames must be >= 1, got {self.hysteresis_frames}")
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError(f"confidence threshold must be in [0, 1], got {self.confidence_threshold}")

    def with_(self, **changes) -> "SmoothingConfig":
        return replace(self, **changes)


@dataclass(frozen=True)
class Smoothed:
    """What is published for one face in one frame."""

    probabilities: np.ndarray  # (n_classes,) float32, smoothed, sums to 1
    label: str  # held label, or UNKNOWN_LABEL when its probability is below the threshold
    confidence: float  # smoothed probability of the held label
    class_index: int  # index of the held label (also when ``label`` reads unknown)


class LabelSmoother:
    """Smoothing and hysteresis state of one track."""

    def __init__(self, config: SmoothingConfig) -> None:
        self.config = config
        self._ema: np.ndarray | None = None
        self._window: deque[np.ndarray] = deque(maxlen=config.window)
        self._held: int | None = None
        self._challenger: int | None = None
        self._challenger_frames = 0

    def reconfigure(self, config: SmoothingConfig) -> None:
        """Apply new settings, keeping the history where it still makes sense."""
        if config.window != self.config.window:
            self._window = deque(list(self._window)[-config.window:], maxlen=config.window)
        self.config = config

    def _smooth(self, p: np.ndarray) -> np.ndarray:
        c = self.config
        self._window.append(p)
        if self._ema is None:
            self._ema = p.copy()
        else:
            self._ema = c.alpha * p + (1.0 - c.alpha) * self._ema
        if c.method == "ema":
            out = self._ema
        elif c.method == "window":
            out = np.mean(np.stack(self._window), axis=0)
        else:
            out = p
        total = float(out.sum())
        return (out / total if total > 0 else out).astype(np.float32)

    def update(self, probabilities: Sequence[float] | np.ndarray) -> Smoothed:
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        c = self.config
        if p.shape[0] != len(c.labels):
            raise ValueError(f"expected {len(c.labels)} probabilities, got {p.shape[0]}")
        if not np.all(np.isfinite(p)):
            raise ValueError("probabilities contain NaN or inf")
        s = self._smooth(p)
        best = int(np.argmax(s))
        if self._held is None:
            self._held = best
        elif best != self._held and s[best] - s[self._held] >= c.hysteresis_margin:
            if best == self._challenger:
                self._challenger_frames += 1
            else:
                self._challenger, self._challenger_frames = best, 1
            if self._challenger_frames >= c.hysteresis_frames:
                self._held = best
                self._challenger, self._challenger_frames = None, 0
        else:
            self._challenger, self._challenger_frames = None, 0
        confidence = float(s[self._held])
        label = c.labels[self._held] if confidence >= c.confidence_threshold else UNKNOWN_LABEL
        return Smoothed(probabilities=s, label=label, confidence=confidence, class_index=self._held)


class TrackSmoother:
    """One :class:`LabelSmoother` per track id."""

    def __init__(self, config: SmoothingConfig) -> None:
        self.config = config
        self._per_track: dict[int, LabelSmoother] = {}

    def reconfigure(self, config: SmoothingConfig) -> None:
        self.config = config
        for s in self._per_track.values():
            s.reconfigure(config)

    def update(self, track_id: int, probabilities: Sequence[float] | np.ndarray) -> Smoothed:
        smoother = self._per_track.get(track_id)
        if smoother is None:
            smoother = self._per_track[track_id] = LabelSmoother(self.config)
        return smoother.update(probabilities)

    def forget(self, track_ids: Iterable[int]) -> None:
        for t in track_ids:
            self._per_track.pop(t, None)

    def reset(self) -> None:
        self._per_track.clear()

    def __len__(self) -> int:
        return len(self._per_track)
