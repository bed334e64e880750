"""One annotated output frame per source frame, without slowing the node down.

    video = AnnotatedVideo(writer, labels_fallback=EMOTION_LABELS)
    video.add_frame(stamp_ns, bgr)                 # every source frame, in order (camera thread)
    video.add_result(stamp_ns, faces, labels)      # every published result (listener callback)
    video.close()                                  # writes what is left, returns the counts

The node keeps its newest-frame design (a frame it skipped has no result of its own), so each source
frame is written once, annotated with the newest result available for it: its own when the node
processed it, else the newest one for an earlier frame. A frame waits in a queue until the node has
answered it or a later frame (results arrive in stamp order), or until it is ``max_wait_s`` old; the
drawing and encoding happen on this object's own thread, never in a ROS callback. No ROS in here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from fer_perception.annotate import FaceAnnotation, draw_faces

FrameWriter = Callable[[np.ndarray], None]


@dataclass(frozen=True)
class _Result:
    stamp_ns: int
    faces: tuple[FaceAnnotation, ...]
    labels: tuple[str, ...]


@dataclass
class VideoCounts:
    frames: int = 0  # source frames received
    written: int = 0  # frames written (each source frame once)
    own_result: int = 0  # written with the result of that very frame
    earlier_result: int = 0  # written with the newest result of an earlier frame (the node skipped it)
    no_result: int = 0  # written before any result had arrived
    overflow: int = 0  # frames not written because the queue was full (the writer fell behind)


class AnnotatedVideo:
    def __init__(self, write: FrameWriter, *, max_wait_s: float = 1.0, max_queue: int = 300,
                 results_kept: int = 256) -> None:
        self._write = write
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.counts = VideoCounts()
        self._frames: deque[tuple[int, float, np.ndarray]] = deque()
        self._results: deque[_Result] = deque(maxlen=results_kept)
        self._newest_answered = -1
        self._cond = threading.Condition()
        self._closing = False
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="annotated_video", daemon=True)
        self._thread.start()

    # --- producers -------------------------------------------------------------------------------
    def add_frame(self, stamp_ns: int, bgr: np.ndarray) -> None:
        """A source frame (not copied: it must not be modified afterwards; drawing copies it)."""
        with self._cond:
            self.counts.frames += 1
            if len(self._frames) >= self.max_queue:
                self.counts.overflow += 1
                return
            self._frames.append((int(stamp_ns), time.monotonic(), bgr))
            self._cond.notify()

    def add_result(self, stamp_ns: int, faces: Sequence[FaceAnnotation], labels: Sequence[str]) -> None:
        with self._cond:
            self._results.append(_Result(int(stamp_ns), tuple(faces), tuple(labels)))
            self._newest_answered = max(self._newest_answered, int(stamp_ns))
            self._cond.notify()

    # --- the writer thread -----------------------------------------------------------------------
    def _result_for(self, stamp_ns: int) -> tuple[_Result | None, bool]:
        """The result of this frame, else the newest for an earlier frame; and whether it is its own."""
        best = None
        for r in self._results:
            if r.stamp_ns == stamp_ns:
                return r, True
            if r.stamp_ns < stamp_ns and (best is None or r.stamp_ns > best.stamp_ns):
                best = r
        return best, False

    def _next_ready(self):
        """(frame, result, own) of the oldest frame once it may be written, else None."""
        if not self._frames:
            return None
        stamp, arrived, bgr = self._frames[0]
        if not (self._closing or self._newest_answered >= stamp or time.monotonic() - arrived >= self.max_wait_s):
            return None
        self._frames.popleft()
        result, own = self._result_for(stamp)
        return bgr, result, own

    def _run(self) -> None:
        while True:
            with self._cond:
                ready = self._next_ready()
                while ready is None:
                    if self._closing and not self._frames:
                        return
                    self._cond.wait(timeout=0.05)
                    ready = self._next_ready()
            bgr, result, own = ready
            if result is None:
                self.counts.no_result += 1
                frame = bgr
            else:
                if own:
                    self.counts.own_result += 1
                else:
                    self.counts.earlier_result += 1
                frame = draw_faces(bgr, result.faces, result.labels)
            if self.error is None:
                try:
                    self._write(frame)
                    self.counts.written += 1
                except Exception as e:  # a writer that fails (disk full, codec): say so once, keep counting
                    self.error = f"{type(e).__name__}: {e}"

    def close(self, timeout: float = 30.0) -> VideoCounts:
        """Write every queued frame (with the results there are by now) and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=timeout)
        return self.counts
