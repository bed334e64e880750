"""Helpers of the node tests: a random-weight ARCH-1 model, node processes, an in-test observer.

Every wait is bounded; processes are stopped with SIGINT (then killed) whatever happens.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MAKE_MODEL = HERE / "_make_model.py"


def _model_key() -> str:
    h = hashlib.sha256()
    for p in (MAKE_MODEL, REPO / "training/fer_training/models.py", REPO / "training/fer_training/export.py"):
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def random_onnx(request, tmp_path_factory) -> Path:
    """A random-weight ARCH-1 ONNX model, built once (in a TensorFlow subprocess) and cached in
    pytest's cache directory keyed by the model code."""
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("fer_training") is None:
        pytest.skip("TensorFlow / fer_training not installed (scripts/bootstrap.sh dev) - no test model")
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("fer_node_models")) if cache is not None else tmp_path_factory.mktemp("models")
    path = root / f"arch1_random_{_model_key()}.onnx"
    if not path.exists():
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        r = subprocess.run([sys.executable, str(MAKE_MODEL), str(path)], env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0 and path.exists(), f"model export failed:\n{r.stdout}\n{r.stderr[-3000:]}"
    return path


class Proc:
    """A fer_perception entry point in its own process; output goes to a log file."""

    def __init__(self, module: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.popen = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, cwd=str(REPO))

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the output within {timeout} s (rc={self.popen.poll()}):\n"
                             + self.output()[-4000:])

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Signal the process (if it still runs), wait for it and return its exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        if not self._log.closed:
            self._log.close()
        return self.popen.returncode


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


class Observer:
    """An rclpy node inside the test process, spun by a background thread."""

    def __init__(self, env: dict[str, str], name: str = "test_observer") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
        self.node = rclpy.create_node(name, context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while self.ctx.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, Exception):
            pass

    def collect(self, msg_type: Any, topic: str, qos: Any = 100, stamp_received: bool = False) -> list:
        out: list = []

        def cb(msg):
            with self._lock:
                out.append((time.monotonic(), msg) if stamp_received else msg)

        self.node.create_subscription(msg_type, topic, cb, qos)
        return out

    def snapshot(self, items: list) -> list:
        with self._lock:
            return list(items)

    @staticmethod
    def wait_until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = pred()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

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

    def close(self) -> None:
        import rclpy

        rclpy.try_shutdown(context=self.ctx)
        self._thread.join(timeout=5)
        try:
            self.node.destroy_node()
        except Exception:
            pass


@pytest.fixture
def observer(ros_env):
    obs = Observer(ros_env)
    yield obs
    obs.close()
