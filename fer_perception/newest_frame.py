"""A one-slot mailbox with a worker thread: whoever produces frames never waits, and the worker
always takes the newest one.

    worker = NewestFrameWorker(handle=lambda frame, received_at: ..., on_error=log_once)
    worker.start()
    dropped = worker.offer(msg)      # True: an older frame was still waiting and is now dropped
    worker.stop()

This is why fer_node never builds a backlog whatever the executor: the subscription callback only
calls ``offer``, and the heavy work runs in ``handle`` on the worker thread. No ROS in here.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

Handler = Callable[[Any, float], None]
#: Called with an exception ``handle`` raised; returns False to end the worker (e.g. at shutdown).
ErrorHandler = Callable[[Exception], bool]


class NewestFrameWorker:
    def __init__(self, handle: Handler, on_error: ErrorHandler, *, name: str = "newest_frame_worker",
                 poll_s: float = 0.25) -> None:
        self._handle = handle
        self._on_error = on_error
        self._name = name
        self._poll_s = poll_s
        self._slot_lock = threading.Lock()
        self._latest: Any = None
        self._latest_t = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the frame in flight (if any); a waiting frame is discarded."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)
        self.clear()

    def offer(self, frame: Any, received_at: float | None = None) -> bool:
        """Hand over the newest frame; True when it replaced one the worker had not taken yet."""
        now = time.monotonic() if received_at is None else received_at
        with self._slot_lock:
            dropped = self._latest is not None
            self._latest, self._latest_t = frame, now
        self._wake.set()
        return dropped

    def clear(self) -> None:
        """Discard the waiting frame (not the one in flight)."""
        with self._slot_lock:
            self._latest = None

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(timeout=self._poll_s):
                continue
            with self._slot_lock:
                frame, received = self._latest, self._latest_t
                self._latest = None
                self._wake.clear()
            if frame is None or self._stop.is_set():
                continue
            try:
                self._handle(frame, received)
            except Exception as e:  # a bug, not bad input: the handler decides whether to go on
                if not self._on_error(e):
                    return
