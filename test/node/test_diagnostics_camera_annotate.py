"""PipelineStats levels/keys, FrameSource (end of file, loop, lost + restored) and drawing (no DDS)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_perception.annotate import FaceAnnotation, draw_faces
from fer_perception.camera_source import FrameSource, SourceError, classify_source, parse_resize
from fer_perception.diagnostics import ERROR, OK, WARN, PipelineStats

DOC = Path(__file__).resolve().parents[2] / "docs" / "node.md"


def test_levels_stale_bad_input_backend_error_and_recovery():
    s = PipelineStats()
    t0 = s.started_at
    assert s.snapshot(now=t0 + 0.5, stale_timeout=2.0).level == OK
    snap = s.snapshot(now=t0 + 3.0, stale_timeout=2.0, info={"input_topic": "/cam"})
    assert snap.level == WARN and "no image on /cam" in snap.message
    assert s.snapshot(now=t0 + 3.0, state="disabled", stale_timeout=2.0).level == OK  # off: not stale
    s.on_received(t0 + 3.1, dropped=False)
    s.on_processed(t0 + 3.2, 0.01, faces=1)
    assert s.snapshot(now=t0 + 3.3, stale_timeout=2.0).level == OK
    assert s.on_bad_input("bad_step") == 1 and s.on_bad_input("bad_step") == 2
    snap = s.snapshot(now=t0 + 3.4, stale_timeout=2.0)
    assert snap.level == WARN and "bad_step=2" in snap.message and snap.values["bad_input.bad_step"] == "2"
    assert s.snapshot(now=t0 + 3.5, stale_timeout=2.0).level == OK  # WARN only for new bad input
    assert s.on_backend_error(RuntimeError("boom")) is True
    assert s.on_backend_error(RuntimeError("boom")) is False  # same episode
    snap = s.snapshot(now=t0 + 3.6, stale_timeout=2.0)
    assert snap.level == ERROR and "boom" in snap.message and snap.values["backend_errors"] == "2"
    assert s.on_processed(t0 + 3.7, 0.01, faces=0) is True  # recovered
    assert s.snapshot(now=t0 + 3.8, stale_timeout=2.0).level == OK


def test_rates_percentiles_and_counters():
    s = PipelineStats(rate_window_s=5.0)
    t0 = s.started_at
    for i in range(100):
        t = t0 + 10 + i * 0.05  # 20 Hz for 5 s
        s.on_received(t, dropped=(i % 4 == 0))
        if i % 4:
            s.on_processed(t + 0.001, latency_s=0.001 * (i % 10 + 1), faces=2, age_s=0.005,
                           stages={"detect": 0.002})
    v = s.snapshot(now=t0 + 15.0, stale_timeout=2.0).values
    assert float(v["input_rate_hz"]) == pytest.approx(20.0, rel=0.05)
    assert float(v["processed_rate_hz"]) == pytest.approx(15.0, rel=0.05)
    assert v["dropped_frames"] == "25" and v["frames_processed"] == "75" and v["frames_received"] == "100"
    assert 4.0 <= float(v["latency_p50_ms"]) <= 7.0 and float(v["latency_p95_ms"]) >= 9.0
    assert v["faces_per_frame"] == "2.00" and v["stage.detect_ms"] == "2.00" and v["frame_age_p50_ms"] == "5.00"


def test_every_status_key_is_documented():
    s = PipelineStats()
    s.on_bad_input("truncated_data")
    s.on_processed(s.started_at + 1, 0.01, 1, stages={"infer": 0.001})
    keys = s.snapshot(stale_timeout=2.0, info={"input_topic": "/x", "backend": "b", "model": "m", "detector": "d",
                            "providers": "p", "precision": "fp32"}).values
    doc = DOC.read_text()
    for key in keys:
        generic = re.sub(r"^(bad_input|stage)\.[a-z_]+?(_ms)?$", lambda m: f"{m.group(1)}.<", key)
        assert f"`{key}`" in doc or generic in doc, key


def test_parse_resize_and_classify():
    assert parse_resize("640x480") == (640, 480) and parse_resize("") is None
    for bad in ("640", "0x10", "axb"):
        with pytest.raises(ValueError):
            parse_resize(bad)
    assert classify_source("") == ("builtin", None)
    assert classify_source("2") == ("device", 2)
    assert classify_source("/dev/video1") == ("device", "/dev/video1")
    assert classify_source("a/b.JPG")[0] == "image" and classify_source("c.mp4")[0] == "video"


def _write_video(path: Path, n: int, size=(64, 48)) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    w.release()


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


def test_draw_faces_copies_and_draws_inside_the_image():
    img = np.zeros((240, 320, 3), np.uint8)
    probs = np.array([0.05, 0.05, 0.05, 0.6, 0.05, 0.1, 0.1])
    out = draw_faces(img, [FaceAnnotation((100, 60, 80, 80), "happy", 0.6, 7, probs),
                           FaceAnnotation((0, 0, 30, 30), "unknown", 0.2, 8, None),
                           FaceAnnotation((300, 200, 40, 60), "sad", 0.9, 9, probs)])  # partly outside
    assert img.max() == 0  # input untouched (it may be a read-only view of a message)
    assert out.shape == img.shape and out[60, 100:180].any() and out[:, :, :].sum() > 0
    ro = img.copy()
    ro.flags.writeable = False
    draw_faces(ro, [])  # read-only input is fine
    with pytest.raises(ValueError):
        draw_faces(np.zeros((10, 10), np.uint8), [])
