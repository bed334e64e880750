"""AnnotatedVideo: every source frame written once, in order, with its own result or the newest earlier one."""

from __future__ import annotations

import threading
import time

import numpy as np

from fer_perception.annotate import FaceAnnotation
from fer_perception.annotated_video import AnnotatedVideo
from fer_perception.labels import EMOTION_LABELS

PROBS = np.full(7, 1 / 7)


def frame(value: int) -> np.ndarray:
    return np.full((240, 320, 3), value, np.uint8)


def face(track: int) -> FaceAnnotation:
    return FaceAnnotation((10, 10, 30, 30), "happy", 0.9, track, PROBS)


class Recorder:
    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.lock = threading.Lock()

    def __call__(self, bgr):
        with self.lock:
            self.frames.append(bgr)


def test_each_frame_once_in_order_with_its_own_or_the_newest_earlier_result():
    out = Recorder()
    video = AnnotatedVideo(out, max_wait_s=5.0)
    for i in range(6):
        video.add_frame(i, frame(10 * i))
    video.add_result(0, [face(1)], EMOTION_LABELS)
    video.add_result(2, [face(1)], EMOTION_LABELS)  # the node skipped frame 1 (newest-frame design)
    video.add_result(5, [], EMOTION_LABELS)  # answers 3 and 4 too: results come in stamp order
    counts = video.close()
    assert counts.frames == counts.written == 6 and counts.overflow == 0
    assert (counts.own_result, counts.earlier_result, counts.no_result) == (3, 3, 0)
    assert len(out.frames) == 6
    for i, written in enumerate(out.frames):  # order kept: the background of frame i is 10 * i
        assert written[235, 315, 0] == 10 * i
    assert out.frames[0].max() > 10 and out.frames[1].max() > 10  # frame 1 drawn with frame 0's face
    assert out.frames[5].max() == 50  # its own result: no face


def test_a_frame_waits_for_its_result_but_not_longer_than_max_wait():
    out = Recorder()
    video = AnnotatedVideo(out, max_wait_s=0.2)
    video.add_frame(100, frame(1))
    time.sleep(0.05)
    assert out.frames == []  # waiting for the node
    time.sleep(0.4)
    assert len(out.frames) == 1 and video.counts.no_result == 1  # the node never answered: written as is
    video.add_frame(200, frame(2))
    video.add_result(200, [face(3)], EMOTION_LABELS)
    deadline = time.monotonic() + 5
    while len(out.frames) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(out.frames) == 2 and video.counts.own_result == 1
    video.close()


def test_the_source_frame_is_not_modified_and_a_failing_writer_is_reported():
    src = frame(7)

    def broken(bgr):
        raise OSError("disk full")

    video = AnnotatedVideo(broken)
    video.add_frame(1, src)
    video.add_result(1, [face(1)], EMOTION_LABELS)
    counts = video.close()
    assert src.max() == 7  # drawing copies: fer_camera's frame is shared
    assert video.error == "OSError: disk full" and counts.written == 0 and counts.frames == 1
