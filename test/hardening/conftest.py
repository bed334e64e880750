"""Fixtures of the hardening tests: an emotion model, node processes that are always stopped, and an
in-process ROS client on the test's isolated domain (test/conftest.py's ``ros_env``)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import rosharness as rh  # noqa: E402


@pytest.fixture(scope="session")
def model_onnx(request) -> Path:
    """The shipped trained model if there is one, else a random-weight ARCH-1 model (cached in
    pytest's cache, shared with test/node). Only the node's behaviour is tested, not accuracy."""
    if rh.SHIPPED_MODEL.exists():
        return rh.SHIPPED_MODEL
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("fer_node_models")) if cache is not None else HERE / ".models"
    try:
        return rh.random_model(root)
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.fixture
def procs(tmp_path):
    """Start node processes with procs.start(env, name=..., ...); all are stopped at teardown."""

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
