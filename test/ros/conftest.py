"""Fixtures of the ROS tests: emotion models, node processes that are always stopped, and in-test
ROS clients on the test's isolated domain (test/conftest.py's ``ros_env``).

Every wait is bounded; processes are stopped with SIGINT (then killed) whatever happens.
"""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path
from typing import Any, Callable

import pytest

import rosharness as rh  # test/harness is on sys.path (test/conftest.py)


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
        from fer_perception.ros.diagnostics import status_level, status_values

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


@pytest.fixture(scope="session")
def model_onnx(request, tmp_path_factory) -> Path:
    """The shipped trained model if there is one, else a random-weight ARCH-1 model (cached in
    pytest's cache, shared with random_onnx). Only the node's behaviour is tested, not accuracy."""
    if rh.SHIPPED_MODEL.exists():
        return rh.SHIPPED_MODEL
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("fer_node_models")) if cache is not None else tmp_path_factory.mktemp("models")
    try:
        return rh.random_model(root)
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.fixture
def node_procs(tmp_path):
    """Start fer_node (or another entry point's) processes with node_procs.start(env, name=..., ...)
    through rosharness.NodeProcess; all are stopped with SIGINT at teardown."""

    class _Procs(list):
        def start(self, env, name: str = "fer_node", **kwargs) -> rh.NodeProcess:
            p = rh.NodeProcess.start(env, tmp_path / "procs", name=name, **kwargs)
            self.append(p)
            return p

    ps = _Procs()
    yield ps
    for p in ps:
        p.stop(signal.SIGINT, timeout=10)


@pytest.fixture
def client(ros_env):
    c = rh.RosClient(ros_env)
    yield c
    c.close()


@pytest.fixture(scope="session")
def face_frames():
    """640 x 480 bgr8 frames: one face (obama.jpg) and two faces (two_people.jpg)."""
    try:
        return {"one": rh.fit_640x480(rh.face_image("obama.jpg")),
                "two": rh.fit_640x480(rh.face_image("two_people.jpg"))}
    except FileNotFoundError as e:
        pytest.skip(str(e))
