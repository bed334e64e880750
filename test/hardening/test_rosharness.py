"""The shared DDS test harness: waits stretch on a loaded machine, never shrink."""

from __future__ import annotations

import os

import rosharness as rh


def test_patience_scales_with_load_and_can_be_fixed(monkeypatch):
    monkeypatch.delenv("FER_TEST_TIMEOUT_SCALE", raising=False)
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert rh.patience(30) == 30  # idle machine: the test's own timeout
    monkeypatch.setattr(os, "getloadavg", lambda: (2.5 * cores, 0, 0))
    assert rh.patience(30) == 75
    monkeypatch.setattr(os, "getloadavg", lambda: (40.0 * cores, 0, 0))
    assert rh.patience(30) == 120  # capped at 4x: a real hang still fails
    monkeypatch.setenv("FER_TEST_TIMEOUT_SCALE", "1.5")
    assert rh.patience(30) == 45
