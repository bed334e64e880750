"""Frames from a video file, a camera (V4L2) or a still image, with end-of-file and reopen handling.

Pure module (no ROS): fer_perception.ros.camera_source publishes these frames as fer_camera.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def parse_resize(text: str) -> tuple[int, int] | None:
    """'640x480' -> (640, 480); '' -> None. Raises ValueError with the reason otherwise."""
    text = (text or "").strip().lower()
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*[x*]\s*(\d+)", text)
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise ValueError(f"resize must look like WIDTHxHEIGHT (e.g. 640x480), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def classify_source(source: str) -> tuple[str, Any]:
    """('builtin', None) | ('device', int or path) | ('image', path) | ('video', path)."""
    source = (source or "").strip()
    if not source:
        return "builtin", None
    if source.isdigit():
        return "device", int(source)
    if source.startswith("/dev/"):
        return "device", source
    if Path(source).suffix.lower() in IMAGE_SUFFIXES:
        return "image", source
    return "video", source


def builtin_image() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins): a real face that ships with the pip dependency."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


class SourceError(RuntimeError):
    """A source that cannot be used at all (missing file, unreadable image)."""


class FrameSource:
    """Frames from one source, with end-of-file and reopen handling. No ROS in here.

    ``read()`` returns ``(frame, event)``: frame is an HxWx3 uint8 BGR array or None; event is
    None, "eof" (video ended, not looping: stop), "missing" (device not there at start, will be
    retried), "lost" (device/file stopped delivering, will be retried) or "restored" (it delivers
    again).
    """

    def __init__(self, source: str, *, loop: bool, resize: tuple[int, int] | None,
                 reopen_interval: float) -> None:
        self.source = source
        self.kind, self.target = classify_source(source)
        self.loop = loop
        self.resize = resize
        self.reopen_interval = reopen_interval
        self._cap: cv2.VideoCapture | None = None
        self._still: np.ndarray | None = None
        self._lost = False
        self._report_missing = False
        self._next_reopen = 0.0
        self._attempts = 0
        self.fps: float | None = None
        if self.kind == "builtin":
            self._still = self._fit(builtin_image())
        elif self.kind == "image":
            img = cv2.imread(str(self.target), cv2.IMREAD_COLOR)
            if img is None:
                raise SourceError(f"cannot read image {self.target} (missing or not an image)")
            self._still = self._fit(img)
        elif self.kind == "video":
            if not Path(self.target).is_file():
                raise SourceError(f"video file {self.target} not found")
            if not self._open():
                raise SourceError(f"cannot open video {self.target} (unsupported codec or corrupt file)")
        else:
            self._open()  # a device that is not there yet is retried in read()
            self._lost = self._cap is None
            self._report_missing = self._lost

    def describe(self) -> str:
        return {"builtin": "built-in astronaut image", "image": f"image {self.target}",
                "video": f"video {self.target}", "device": f"camera {self.target}"}[self.kind]

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        if self.resize is not None and (frame.shape[1], frame.shape[0]) != self.resize:
            interp = cv2.INTER_AREA if frame.shape[1] > self.resize[0] else cv2.INTER_LINEAR
            frame = cv2.resize(frame, self.resize, interpolation=interp)
        return np.ascontiguousarray(frame)

    def _open(self) -> bool:
        self.close()
        self._attempts += 1
        quiet = self._attempts > 1 and hasattr(cv2, "setLogLevel") and hasattr(cv2, "getLogLevel")
        if quiet:  # OpenCV warns on every failed open; our own log says it once
            previous = cv2.getLogLevel()
            cv2.setLogLevel(0)  # LOG_LEVEL_SILENT
        try:
            if self.kind == "device" and isinstance(self.target, str):
                cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
            else:
                cap = cv2.VideoCapture(self.target)
        finally:
            if quiet:
                cv2.setLogLevel(previous)
        if not cap.isOpened():
            cap.release()
            return False
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        return True

    def read(self) -> tuple[np.ndarray | None, str | None]:
        if self._still is not None:
            return self._still, None
        if self._report_missing:
            self._report_missing = False
            self._next_reopen = time.monotonic() + self.reopen_interval
            return None, "missing"
        if self._lost:
            now = time.monotonic()
            if now < self._next_reopen:
                return None, None
            self._next_reopen = now + self.reopen_interval
            if not self._open():
                return None, None
            ok, frame = self._cap.read()
            if not ok or frame is None:
                self.close()
                return None, None
            self._lost = False
            return self._fit(frame), "restored"
        ok, frame = self._cap.read() if self._cap is not None else (False, None)
        if ok and frame is not None:
            return self._fit(frame), None
        if self.kind == "video" and Path(self.target).is_file():
            if not self.loop:
                return None, "eof"
            if self._open():  # play again from the start
                ok, frame = self._cap.read()
                if ok and frame is not None:
                    return self._fit(frame), None
        # A device that stopped, or a file that disappeared / broke: retry every reopen_interval.
        self.close()
        self._lost = True
        self._next_reopen = time.monotonic() + self.reopen_interval
        return None, "lost"

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
