"""Helpers of the node tests: a random-weight ARCH-1 model, node processes, an in-test observer.

Every wait is bounded; processes are stopped with SIGINT (then killed) whatever happens.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import rosharness as rh  # test/ is on sys.path (test/conftest.py)


@pytest.fixture(scope="session")
def random_onnx(request, tmp_path_factory) -> Path:
    """A random-weight ARCH-1 ONNX model, built once (in a TensorFlow subprocess) and cached in
    pytest's cache directory keyed by the model code."""
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("fer_training") is None:
        pytest.skip("TensorFlow / fer_training not installed (scripts/bootstrap.sh dev) - no test model")
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("fer_node_models")) if cache is not None else tmp_path_factory.mktemp("models")
    return rh.random_model(root)


Proc = rh.LoggedProcess


@pytest.fixture
def procs():
    """Start processes with procs.start(...); all are stopped at teardown."""

    class _Procs(list):
        tmp: Path

        def start(self, module: str, args: list[str], env: dict[str, str], name: str) -> Proc:
            p = Proc(module, args, env, self.tmp / f"{name}.log")
            self.append(p)
            return p

    ps = _Procs()
    yield ps
    for p in ps:
        p.stop()


@pytest.fixture(autouse=True)
def _procs_tmp(request, tmp_path):
    if "procs" in request.fixturenames:
        request.getfixturevalue("procs").tmp = tmp_path


class Observer(rh.RosClient):
    """An rclpy node inside the test process, spun by a background thread."""

    def __init__(self, env: dict[str, str], name: str = "test_observer") -> None:
        super().__init__(env, name)

    def collect(self, msg_type: Any, topic: str, qos: Any = 100, stamp_received: bool = False) -> list:
        return super().collect(msg_type, topic, qos, stamped=stamp_received)

    wait_until = staticmethod(rh.wait_until)

    def wait_future(self, future, timeout: float, what: str) -> Any:
        self.wait_until(future.done, timeout, what)
        return future.result()

    def latest_status(self, diags: list, prefix: str = "fer_node"):
        """The newest DiagnosticStatus in ``diags`` whose name starts with ``prefix`` (or None)."""
        for arr in reversed(self.snapshot(diags)):
            for st in arr.status:
                if st.name.startswith(prefix):
                    return st
        return None

    def wait_status(self, diags: list, pred: Callable[[int, dict, str], Any], timeout: float, what: str):
        """Wait for a fer_node status with pred(level, values, message); returns (level, values, message)."""
        from fer_perception.diagnostics import status_level, status_values

        def check():
            st = self.latest_status(diags)
            if st is None:
                return None
            got = (status_level(st), status_values(st), st.message)
            return got if pred(*got) else None

        return self.wait_until(check, timeout, what)


@pytest.fixture
def observer(ros_env):
    obs = Observer(ros_env)
    yield obs
    obs.close()
