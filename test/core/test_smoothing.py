"""Per-track smoothing and label hysteresis on synthetic probability sequences (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_perception.labels import EMOTION_LABELS, UNKNOWN_LABEL
from fer_perception.params import defaults
from fer_perception.smoothing import LabelSmoother, SmoothingConfig, TrackSmoother


def cfg(**overrides) -> SmoothingConfig:
    """config/fer.yaml's smoothing defaults with the fields a test is about overridden."""
    return SmoothingConfig.from_yaml_defaults(**overrides)

HAPPY = EMOTION_LABELS.index("happy")
SAD = EMOTION_LABELS.index("sad")
NEUTRAL = EMOTION_LABELS.index("neutral")


def peaked(index: int, p: float = 0.9) -> np.ndarray:
    v = np.full(len(EMOTION_LABELS), (1 - p) / (len(EMOTION_LABELS) - 1))
    v[index] = p
    return v


@pytest.mark.parametrize("method", ["ema", "window"])
def test_one_frame_blip_does_not_change_label(method):
    s = LabelSmoother(cfg(method=method, alpha=0.5, window=5, hysteresis_margin=0.1,
                                      hysteresis_frames=3, confidence_threshold=0.3))
    labels = [s.update(peaked(HAPPY)).label for _ in range(5)]
    labels.append(s.update(peaked(SAD, 0.99)).label)  # one-frame blip
    labels += [s.update(peaked(HAPPY)).label for _ in range(5)]
    assert labels == ["happy"] * 11


def test_one_frame_blip_does_not_change_label_even_without_smoothing():
    s = LabelSmoother(cfg(method="none", hysteresis_frames=2, confidence_threshold=0.0))
    out = [s.update(p).label for p in [peaked(HAPPY), peaked(HAPPY), peaked(SAD), peaked(HAPPY)]]
    assert out == ["happy"] * 4


def test_sustained_change_switches_after_k_frames():
    k = 3
    s = LabelSmoother(cfg(method="none", hysteresis_margin=0.1, hysteresis_frames=k,
                                      confidence_threshold=0.0))
    for _ in range(3):
        assert s.update(peaked(HAPPY)).label == "happy"
    out = [s.update(peaked(SAD)).label for _ in range(k + 1)]
    assert out == ["happy"] * (k - 1) + ["sad"] * 2


def test_margin_blocks_a_narrow_win():
    s = LabelSmoother(cfg(method="none", hysteresis_margin=0.2, hysteresis_frames=1,
                                      confidence_threshold=0.0))
    s.update(peaked(HAPPY))
    v = np.zeros(7)
    v[HAPPY], v[SAD], v[NEUTRAL] = 0.40, 0.45, 0.15  # sad wins by 0.05 < 0.2
    for _ in range(10):
        r = s.update(v)
        assert r.label == "happy"
        assert r.confidence == pytest.approx(0.40, abs=1e-6)
    v[HAPPY], v[SAD] = 0.2, 0.65  # now by 0.45
    assert s.update(v).label == "sad"


def test_low_confidence_reads_unknown_and_recovers():
    s = LabelSmoother(cfg(method="none", confidence_threshold=0.5))
    assert s.update(peaked(HAPPY, 0.9)).label == "happy"
    r = s.update(peaked(HAPPY, 0.3))
    assert r.label == UNKNOWN_LABEL and r.confidence == pytest.approx(0.3)
    assert r.class_index == HAPPY
    assert s.update(peaked(HAPPY, 0.8)).label == "happy"


def test_ema_converges_and_sums_to_one():
    s = LabelSmoother(cfg(method="ema", alpha=0.3, hysteresis_frames=1, hysteresis_margin=0.0))
    r = None
    for _ in range(40):
        r = s.update(peaked(SAD, 0.8))
    assert r.probabilities[SAD] == pytest.approx(0.8, abs=1e-3)
    assert float(r.probabilities.sum()) == pytest.approx(1.0, abs=1e-5)
    assert r.probabilities.dtype == np.float32


def test_window_is_the_mean_of_the_last_frames():
    s = LabelSmoother(cfg(method="window", window=3, confidence_threshold=0.0))
    seq = [peaked(HAPPY), peaked(SAD), peaked(NEUTRAL), peaked(SAD)]
    for p in seq:
        r = s.update(p)
    np.testing.assert_allclose(r.probabilities, np.mean(seq[-3:], axis=0), atol=1e-6)


def test_track_smoother_keeps_state_per_track_and_forgets():
    ts = TrackSmoother(cfg(method="none", hysteresis_frames=5, confidence_threshold=0.0))
    assert ts.update(1, peaked(HAPPY)).label == "happy"
    assert ts.update(2, peaked(SAD)).label == "sad"  # a new track takes its first label at once
    assert ts.update(1, peaked(SAD)).label == "happy"  # track 1 holds its label
    ts.forget([1])
    assert len(ts) == 1
    assert ts.update(1, peaked(SAD)).label == "sad"


def test_reconfigure_applies_live():
    ts = TrackSmoother(cfg(method="none", confidence_threshold=0.5))
    assert ts.update(1, peaked(HAPPY, 0.45)).label == UNKNOWN_LABEL
    ts.reconfigure(ts.config.with_(confidence_threshold=0.4))
    assert ts.update(1, peaked(HAPPY, 0.45)).label == "happy"


@pytest.mark.parametrize("bad", [dict(method="median"), dict(alpha=0.0), dict(window=0),
                                 dict(hysteresis_frames=0), dict(confidence_threshold=1.5)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        cfg(**bad)


def test_wrong_length_or_nan_rejected():
    s = LabelSmoother(cfg())
    with pytest.raises(ValueError):
        s.update(np.ones(6) / 6)
    with pytest.raises(ValueError):
        s.update(np.full(7, np.nan))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7).filter(lambda v: sum(v) > 1e-3),
                min_size=1, max_size=20),
       st.sampled_from(["ema", "window", "none"]))
def test_output_is_always_a_distribution_and_label_is_valid(seq, method):
    s = LabelSmoother(cfg(method=method, confidence_threshold=0.3))
    for v in seq:
        v = np.asarray(v) / np.sum(v)
        r = s.update(v)
        assert float(r.probabilities.sum()) == pytest.approx(1.0, abs=1e-4)
        assert r.label in EMOTION_LABELS + (UNKNOWN_LABEL,)
        assert r.confidence == pytest.approx(float(r.probabilities[r.class_index]), abs=1e-6)


def test_from_yaml_defaults_matches_the_parameters():
    d = defaults("fer_node")
    c = SmoothingConfig.from_yaml_defaults()
    assert (c.method, c.alpha, c.window, c.hysteresis_margin, c.hysteresis_frames, c.confidence_threshold) == (
        d["smoothing"], d["smoothing_alpha"], d["smoothing_window"], d["hysteresis_margin"],
        d["hysteresis_frames"], d["confidence_threshold"])
