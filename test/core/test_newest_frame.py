"""NewestFrameWorker: the producer never waits, the worker takes the newest frame, drops are counted."""

from __future__ import annotations

import threading
import time

from fer_perception.newest_frame import NewestFrameWorker


def wait_for(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_busy_worker_gets_the_newest_frame_and_older_ones_are_dropped():
    seen, release = [], threading.Event()

    def handle(frame, received_at):
        seen.append(frame)
        if frame == 0:
            release.wait(5.0)  # busy with frame 0 while 1, 2, 3 arrive

    worker = NewestFrameWorker(handle, lambda e: True)
    worker.start()
    try:
        assert worker.offer(0) is False
        wait_for(lambda: seen == [0])
        drops = [worker.offer(i) for i in (1, 2, 3)]
        assert drops == [False, True, True]  # 1 and 2 were overwritten before the worker took them
        release.set()
        wait_for(lambda: seen == [0, 3])
    finally:
        worker.stop()


def test_handler_errors_go_to_on_error_which_decides_whether_to_continue():
    errors, handled = [], []

    def handle(frame, received_at):
        if frame == "bad":
            raise ValueError("bug")
        handled.append(frame)

    worker = NewestFrameWorker(handle, lambda e: errors.append(e) or True)
    worker.start()
    try:
        worker.offer("bad")
        wait_for(lambda: len(errors) == 1)
        worker.offer("good")
        wait_for(lambda: handled == ["good"])
    finally:
        worker.stop()

    stopping = NewestFrameWorker(handle, lambda e: False)
    stopping.start()
    thread = stopping._thread
    stopping.offer("bad")
    thread.join(5.0)
    assert not thread.is_alive()  # on_error returned False: the worker ended
    stopping.stop()


def test_stop_discards_the_waiting_frame_and_start_runs_again():
    handled = []
    worker = NewestFrameWorker(lambda f, t: handled.append(f), lambda e: True)
    worker.offer("before start")  # waits in the slot
    worker.clear()
    worker.start()
    worker.offer("a")
    wait_for(lambda: handled == ["a"])
    worker.stop()
    assert not worker.running
    worker.offer("while stopped")
    worker.stop()  # discards it
    worker.start()
    worker.offer("b")
    wait_for(lambda: handled == ["a", "b"])
    worker.stop()
