"""PipelineStats: status levels, rates, percentiles, and every key documented (no DDS)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fer_perception.stats import ERROR, OK, WARN, PipelineStats

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
