"""Run-time statistics of fer_node and the status they add up to.

:class:`PipelineStats` is plain Python (thread-safe counters and sliding windows); its
:class:`Snapshot` is what fer_perception.ros.diagnostics turns into a diagnostic_msgs/DiagnosticStatus.

Status levels:

* ERROR - the inference backend (or detector) raised on the last frame it was given; back to OK at
  the next frame that goes through.
* WARN - the node is active but no image arrived for ``stale_timeout`` seconds, or images arrived
  that could not be converted (bad input) since the previous status.
* OK - otherwise (also while switched off: the message says so).

Keys (values are strings, as DiagnosticStatus requires) are listed in :data:`KEYS` and in
docs/node.md.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

OK, WARN, ERROR = 0, 1, 2  # = diagnostic_msgs/DiagnosticStatus.OK / WARN / ERROR

KEYS: dict[str, str] = {
    "state": "active, disabled (enabled=false), inactive or unconfigured (lifecycle)",
    "input_topic": "resolved image topic the node subscribes to",
    "input_rate_hz": "images received per second (last 5 s)",
    "processed_rate_hz": "frames processed per second (last 5 s)",
    "latency_p50_ms": "processing latency, image received -> FaceEmotionArray published, median (last 300 frames)",
    "latency_p95_ms": "same, 95th percentile",
    "frame_age_p50_ms": "header.stamp -> FaceEmotionArray published, median (includes transport; needs a shared clock)",
    "frames_received": "images received since start",
    "frames_processed": "frames processed since start (one FaceEmotionArray each)",
    "dropped_frames": "images overwritten by a newer one before they were processed (the node works on the newest frame only)",
    "faces_per_frame": "mean number of faces per processed frame (last 300 frames)",
    "backend": "inference backend in use",
    "model": "expression model file in use",
    "detector": "face detector in use",
    "detector_backend": "inference backend the detector runs on (BlazeFace only)",
    "bad_input_total": "images that could not be converted since start",
    "bad_input.<kind>": "the same by ImageConversionError kind (unsupported_encoding, truncated_data, bad_step, empty_image, corrupt_compressed, ...)",
    "backend_errors": "frames on which the backend or detector raised since start",
    "last_backend_error": "message of the last backend error",
    "stage.<name>_ms": "mean per-stage time reported by the pipeline (last 300 frames)",
    "seconds_since_last_image": "time since the last image arrived",
}


def _percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


@dataclass
class Snapshot:
    """Everything one diagnostics status reports."""

    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


class PipelineStats:
    """Counters and sliding windows, updated by the subscription callback and the worker thread."""

    def __init__(self, window: int = 300, rate_window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self.rate_window_s = rate_window_s
        self.frames_received = 0
        self.frames_processed = 0
        self.dropped_frames = 0
        self.bad_input: Counter[str] = Counter()
        self.backend_errors = 0
        self.backend_error_active = False
        self.last_backend_error = ""
        self._bad_since_report = 0
        self._received_at: deque[float] = deque(maxlen=10_000)
        self._processed_at: deque[float] = deque(maxlen=10_000)
        self._latency: deque[float] = deque(maxlen=window)
        self._age: deque[float] = deque(maxlen=window)
        self._faces: deque[int] = deque(maxlen=window)
        self._stages: dict[str, deque[float]] = {}
        self._window = window
        self.last_input_at: float | None = None
        self.started_at = time.monotonic()

    # --- updates -----------------------------------------------------------------------------
    def on_received(self, now: float, dropped: bool) -> None:
        with self._lock:
            self.frames_received += 1
            self.dropped_frames += int(dropped)
            self._received_at.append(now)
            self.last_input_at = now

    def on_bad_input(self, kind: str) -> int:
        """Count one bad image; returns how many of this kind were seen (1 = first)."""
        with self._lock:
            self.bad_input[kind] += 1
            self._bad_since_report += 1
            return self.bad_input[kind]

    def on_backend_error(self, error: BaseException) -> bool:
        """Count one backend failure; returns True when this starts an error episode."""
        with self._lock:
            self.backend_errors += 1
            self.last_backend_error = f"{type(error).__name__}: {error}"
            first = not self.backend_error_active
            self.backend_error_active = True
            return first

    def on_processed(
        self,
        now: float,
        latency_s: float,
        faces: int,
        age_s: float | None = None,
        stages: Mapping[str, float] | None = None,
    ) -> bool:
        """Count one processed frame; returns True when this ends a backend error episode."""
        with self._lock:
            self.frames_processed += 1
            self._processed_at.append(now)
            self._latency.append(latency_s)
            self._faces.append(faces)
            if age_s is not None and age_s >= 0:
                self._age.append(age_s)
            for name, seconds in (stages or {}).items():
                self._stages.setdefault(name, deque(maxlen=self._window)).append(float(seconds))
            recovered = self.backend_error_active
            self.backend_error_active = False
            return recovered

    def reset_input_clock(self, now: float | None = None) -> None:
        """Start the stale timer afresh (on activation / enabling)."""
        with self._lock:
            self.last_input_at = None
            self.started_at = time.monotonic() if now is None else now

    # --- report --------------------------------------------------------------------------------
    def _rate(self, times: deque[float], now: float) -> float:
        lo = now - self.rate_window_s
        recent = [t for t in times if t >= lo]
        span = min(self.rate_window_s, max(now - self.started_at, 1e-3))
        return len(recent) / span if recent else 0.0

    def snapshot(
        self,
        *,
        now: float | None = None,
        state: str = "active",
        stale_timeout: float,
        info: Mapping[str, Any] | None = None,
    ) -> Snapshot:
        now = time.monotonic() if now is None else now
        with self._lock:
            v: dict[str, str] = {"state": state}
            v.update({k: str(val) for k, val in (info or {}).items()})
            v["input_rate_hz"] = f"{self._rate(self._received_at, now):.2f}"
            v["processed_rate_hz"] = f"{self._rate(self._processed_at, now):.2f}"
            v["latency_p50_ms"] = f"{_percentile(self._latency, 50) * 1e3:.2f}"
            v["latency_p95_ms"] = f"{_percentile(self._latency, 95) * 1e3:.2f}"
            v["frame_age_p50_ms"] = f"{_percentile(self._age, 50) * 1e3:.2f}"
            v["frames_received"] = str(self.frames_received)
            v["frames_processed"] = str(self.frames_processed)
            v["dropped_frames"] = str(self.dropped_frames)
            v["faces_per_frame"] = f"{np.mean(self._faces):.2f}" if self._faces else "0.00"
            v["bad_input_total"] = str(sum(self.bad_input.values()))
            for kind in sorted(self.bad_input):
                v[f"bad_input.{kind}"] = str(self.bad_input[kind])
            v["backend_errors"] = str(self.backend_errors)
            v["last_backend_error"] = self.last_backend_error
            for name in sorted(self._stages):
                v[f"stage.{name}_ms"] = f"{np.mean(self._stages[name]) * 1e3:.2f}"
            since = now - (self.last_input_at if self.last_input_at is not None else self.started_at)
            v["seconds_since_last_image"] = f"{since:.1f}" if self.last_input_at is not None else "never"
            bad_recent = self._bad_since_report
            self._bad_since_report = 0

            if self.backend_error_active:
                level, msg = ERROR, f"backend failed: {self.last_backend_error}"
            elif state != "active":
                level, msg = OK, f"perception {state}"
            elif since > stale_timeout:
                topic = v.get("input_topic", "the image topic")
                level, msg = WARN, f"no image on {topic} for {since:.1f} s (stale_timeout {stale_timeout:g} s)"
            elif bad_recent:
                kinds = ", ".join(f"{k}={n}" for k, n in sorted(self.bad_input.items()))
                level, msg = WARN, f"{bad_recent} bad input image(s) since the last status ({kinds})"
            else:
                level = OK
                msg = f"processing {v['processed_rate_hz']} Hz, p50 {v['latency_p50_ms']} ms"
        return Snapshot(level=level, message=msg, values=v)
