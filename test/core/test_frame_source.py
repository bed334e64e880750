"""FrameSource: end of file, loop, lost + restored sources, the built-in face (no DDS)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_perception.frame_source import FrameSource, SourceError, classify_source, parse_resize


def _write_video(path: Path, n: int, size=(64, 48)) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    w.release()


def test_parse_resize_and_classify():
    assert parse_resize("640x480") == (640, 480) and parse_resize("") is None
    for bad in ("640", "0x10", "axb"):
        with pytest.raises(ValueError):
            parse_resize(bad)
    assert classify_source("") == ("builtin", None)
    assert classify_source("2") == ("device", 2)
    assert classify_source("/dev/video1") == ("device", "/dev/video1")
    assert classify_source("a/b.JPG")[0] == "image" and classify_source("c.mp4")[0] == "video"


def test_video_end_of_file_loop_and_resize(tmp_path):
    video = tmp_path / "v.mp4"
    _write_video(video, 3)
    src = FrameSource(str(video), loop=False, resize=(32, 24), reopen_interval=1.0)
    frames = [src.read() for _ in range(4)]
    assert [f is not None for f, _ in frames[:3]] == [True] * 3 and frames[0][0].shape == (24, 32, 3)
    assert frames[3] == (None, "eof")
    looped = FrameSource(str(video), loop=True, resize=None, reopen_interval=1.0)
    assert all(looped.read()[0] is not None for _ in range(7))


def test_file_that_disappears_is_reopened_when_it_is_back(tmp_path):
    video = tmp_path / "v.mp4"
    _write_video(video, 2)
    src = FrameSource(str(video), loop=True, resize=None, reopen_interval=0.0)
    assert src.read()[0] is not None and src.read()[0] is not None
    hidden = tmp_path / "hidden.mp4"
    shutil.move(video, hidden)
    assert src.read() == (None, "lost")
    assert src.read() == (None, None)  # still gone: keeps trying quietly
    shutil.move(hidden, video)
    frame, event = src.read()
    assert frame is not None and event == "restored"


def test_missing_device_is_retried_and_bad_files_fail_clearly(tmp_path):
    src = FrameSource("/dev/video_fer_test_missing", loop=False, resize=None, reopen_interval=0.0)
    assert src.read() == (None, "missing")
    assert src.read() == (None, None)
    with pytest.raises(SourceError, match="not found"):
        FrameSource(str(tmp_path / "none.mp4"), loop=False, resize=None, reopen_interval=1.0)
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(SourceError, match="cannot read image"):
        FrameSource(str(tmp_path / "x.png"), loop=False, resize=None, reopen_interval=1.0)


def test_builtin_source_is_a_real_face_image():
    frame, event = FrameSource("", loop=False, resize=None, reopen_interval=1.0).read()
    assert event is None and frame.shape == (512, 512, 3) and frame.dtype == np.uint8
    faces = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml").detectMultiScale(
        cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), 1.1, 5, minSize=(60, 60))
    assert len(faces) == 1
