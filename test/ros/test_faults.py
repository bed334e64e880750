"""Fault injection against real fer_node / fer_camera processes (CI-sized, bounded waits).

* the camera stops and comes back: /diagnostics goes WARN (stale) and back to OK;
* the model file is garbage at start: a clear one-line error, non-zero exit, no traceback;
* the inference backend raises at run time: ERROR diagnostic and the next frames are served, or a
  clean exit with status 3 when exit_on_backend_error is true;
* SIGINT / SIGTERM while frames are flowing: exit status 0, no traceback.
"""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

import rosharness as rh
from faulty_model import write_batch2_only_model

pytestmark = [pytest.mark.ros, pytest.mark.hardening]

START_TIMEOUT = 90.0  # node start-up (rclpy + ONNX Runtime + BlazeFace) on 2 loaded cores
OK, WARN, ERROR = 0, 1, 2


def _msgs():
    from diagnostic_msgs.msg import DiagnosticArray
    from fer_msgs.msg import FaceEmotionArray
    from sensor_msgs.msg import Image

    return Image, FaceEmotionArray, DiagnosticArray


def _image(bgr: np.ndarray):
    from fer_perception.ros.image_msgs import numpy_to_image

    return numpy_to_image(bgr, "bgr8")


class Feeder:
    """Publishes one message repeatedly at ``rate`` Hz from a thread until stopped."""

    def __init__(self, pub, msg, rate: float = 10.0) -> None:
        self.pub, self.msg, self.period = pub, msg, 1.0 / rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pub.publish(self.msg)
                self.sent += 1
            except Exception:  # context shut down under us at teardown
                return
            self._stop.wait(self.period)

    def set(self, msg) -> None:
        self.msg = msg

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _no_traceback(proc: rh.NodeProcess) -> None:
    err = proc.stderr()
    assert "Traceback" not in err, err[-4000:]
    assert "internal error" not in proc.output(), proc.output()[-4000:]


def _wait_status(client, diags, pred, timeout: float, what: str, after: float = 0.0):
    def check():
        found = rh.status_of(client.snapshot(diags), after=after)
        return found if found is not None and pred(found[1]) else None

    return rh.wait_until(check, timeout, what)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_processing_exits_cleanly(sig, ros_env, node_procs, client, model_onnx, face_frames):
    Image, FaceEmotionArray, _ = _msgs()
    node = node_procs.start(ros_env, params=rh.node_params(model_onnx), remaps={"image": "/cam/image"})
    faces = client.collect(FaceEmotionArray, "/fer_node/faces")
    pub = client.publisher(Image, "/cam/image", reliable=True)
    rh.wait_for_subscribers(pub, 1, START_TIMEOUT)
    feeder = Feeder(pub, _image(face_frames["one"]), rate=15)
    try:
        rh.wait_until(lambda: len(client.snapshot(faces)) >= 3, 60, "FaceEmotionArray messages")
        node.send_signal(sig)
        rc = node.wait(timeout=20)
    finally:
        feeder.stop()
    assert rc == 0, f"exit status {rc} after {sig.name}:\n{node.output()[-3000:]}"
    _no_traceback(node)


@pytest.mark.parametrize("kind", ["random_bytes", "truncated_onnx", "empty_file"])
def test_garbage_model_fails_clearly(kind, ros_env, node_procs, tmp_path, model_onnx):
    bad = tmp_path / "model.onnx"
    if kind == "random_bytes":
        bad.write_bytes(np.random.default_rng(0).bytes(50_000))
    elif kind == "truncated_onnx":
        bad.write_bytes(model_onnx.read_bytes()[: model_onnx.stat().st_size // 2])
    else:
        bad.write_bytes(b"")
    node = node_procs.start(ros_env, params=rh.node_params(bad))
    rc = node.wait(timeout=START_TIMEOUT)
    err = node.stderr()
    assert rc not in (0, None) and rc > 0, f"exit status {rc}:\n{node.output()[-3000:]}"
    assert "fer_node: error:" in err and str(bad) in err, err[-3000:]
    assert "Traceback" not in err, err[-4000:]


def test_camera_stops_and_restarts(ros_env, node_procs, client, model_onnx, obama_jpg):
    """fer_camera is killed and started again: diagnostics OK -> WARN (stale) -> OK."""
    _, FaceEmotionArray, DiagnosticArray = _msgs()
    diags = client.collect(DiagnosticArray, "/diagnostics")
    faces = client.collect(FaceEmotionArray, "/fer_node/faces")
    node = node_procs.start(ros_env, params=rh.node_params(model_onnx, stale_timeout=1.0, qos_reliability="reliable"),
                       remaps={"image": "/cam/image"})
    image = str(obama_jpg)
    camera_args = dict(module="fer_perception.ros.camera_source", extra_args=["--image", image, "--rate", "10",
                                                                          "--resize", "640x480"],
                       remaps={"image": "/cam/image"})
    camera = node_procs.start(ros_env, name="camera1", **camera_args)
    rh.wait_until(lambda: len(client.snapshot(faces)) >= 2, START_TIMEOUT, "faces from the first camera")
    _wait_status(client, diags, lambda s: rh.level(s) == OK and int(rh.values(s)["frames_processed"]) > 0,
                 20, "an OK status while the camera runs")

    assert camera.stop(signal.SIGINT, timeout=10) == 0
    stopped = time.monotonic()
    t_warn, warn = _wait_status(client, diags, lambda s: rh.level(s) == WARN and "no image" in s.message,
                                20, "a WARN (stale) status after the camera stopped", after=stopped)
    assert float(rh.values(warn)["seconds_since_last_image"]) >= 1.0, "WARN before stale_timeout elapsed"
    processed_before = int(rh.values(warn)["frames_processed"])

    camera2 = node_procs.start(ros_env, name="camera2", **camera_args)
    restarted = time.monotonic()
    _wait_status(client, diags, lambda s: rh.level(s) == OK and int(rh.values(s)["frames_processed"]) > processed_before,
                 START_TIMEOUT, "OK again with new frames after the camera restarted", after=restarted)
    assert node.popen.poll() is None, node.output()[-3000:]
    assert camera2.popen.poll() is None, camera2.output()[-3000:]
    # fer_camera shuts down cleanly on SIGTERM too (the first one was stopped with SIGINT).
    assert camera2.stop(signal.SIGTERM, timeout=10) == 0, camera2.output()[-3000:]
    assert "Traceback" not in camera.stderr() + camera2.stderr()


def test_backend_error_reports_and_keeps_serving(ros_env, node_procs, client, tmp_path, face_frames):
    """A model that fails at run time on one-face frames: ERROR diagnostic, node alive, and the
    next (two-face) frames are served and the status is OK again."""
    Image, FaceEmotionArray, DiagnosticArray = _msgs()
    model = write_batch2_only_model(tmp_path / "batch2_only.onnx")
    diags = client.collect(DiagnosticArray, "/diagnostics")
    faces = client.collect(FaceEmotionArray, "/fer_node/faces")
    node = node_procs.start(ros_env, params=rh.node_params(model, exit_on_backend_error=False, stale_timeout=5.0),
                       remaps={"image": "/cam/image"})
    pub = client.publisher(Image, "/cam/image", reliable=True)
    rh.wait_for_subscribers(pub, 1, START_TIMEOUT)
    feeder = Feeder(pub, _image(face_frames["one"]), rate=5)
    try:
        _, err_status = _wait_status(client, diags, lambda s: rh.level(s) == ERROR, 60, "an ERROR status")
        v = rh.values(err_status)
        assert int(v["backend_errors"]) >= 1 and v["last_backend_error"], v
        assert node.popen.poll() is None, "node died on a backend error:\n" + node.output()[-3000:]

        switched = time.monotonic()
        feeder.set(_image(face_frames["two"]))
        rh.wait_until(lambda: any(t > switched and len(m.faces) == 2 for t, m in client.snapshot(faces)),
                      30, "a FaceEmotionArray with 2 faces after the backend error")
        _wait_status(client, diags, lambda s: rh.level(s) == OK, 10, "OK again after recovery", after=switched)
    finally:
        feeder.stop()
    assert node.popen.poll() is None
    assert "inference backend failed" in node.output()


def test_backend_error_exits_when_asked(ros_env, node_procs, client, tmp_path, face_frames):
    Image, _, _ = _msgs()
    model = write_batch2_only_model(tmp_path / "batch2_only.onnx")
    node = node_procs.start(ros_env, params=rh.node_params(model, exit_on_backend_error=True),
                       remaps={"image": "/cam/image"})
    pub = client.publisher(Image, "/cam/image", reliable=True)
    rh.wait_for_subscribers(pub, 1, START_TIMEOUT)
    feeder = Feeder(pub, _image(face_frames["one"]), rate=5)
    try:
        rc = node.wait(timeout=60)
    finally:
        feeder.stop()
    assert rc == 3, f"exit status {rc}:\n{node.output()[-3000:]}"
    assert "Traceback" not in node.stderr(), node.stderr()[-4000:]
    assert "inference backend failed" in node.output()


def test_live_parameter_churn_while_processing(ros_env, node_procs, client, model_onnx, face_frames):
    """Random valid and invalid parameter changes (enabled on/off, smoothing method and sizes, face
    limits, tracking) through the parameter service while frames flow: invalid ones are refused,
    the node never exits or logs an internal error, and afterwards it answers correctly."""
    from rcl_interfaces.msg import Parameter as ParamMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    Image, FaceEmotionArray, _ = _msgs()
    node = node_procs.start(ros_env, params=rh.node_params(model_onnx), remaps={"image": "/cam/image"})
    faces = client.collect(FaceEmotionArray, "/fer_node/faces")
    pub = client.publisher(Image, "/cam/image", reliable=True)
    rh.wait_for_subscribers(pub, 1, START_TIMEOUT)
    srv = client.node.create_client(SetParameters, "/fer_node/set_parameters")
    assert srv.wait_for_service(timeout_sec=30)

    def value(v) -> ParameterValue:
        if isinstance(v, bool):
            return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
        if isinstance(v, int):
            return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
        if isinstance(v, float):
            return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=v)

    def set_params(**kv) -> list[bool]:
        req = SetParameters.Request(parameters=[ParamMsg(name=k, value=value(v)) for k, v in kv.items()])
        fut = srv.call_async(req)
        rh.wait_until(fut.done, 20, f"set_parameters {kv}")
        return [r.successful for r in fut.result().results]

    rng = np.random.default_rng(3)
    valid = [
        lambda: {"enabled": bool(rng.integers(0, 2))},
        lambda: {"smoothing": str(rng.choice(["ema", "window", "none"]))},
        lambda: {"smoothing_alpha": float(rng.uniform(0.01, 1.0)), "smoothing_window": int(rng.integers(1, 301))},
        lambda: {"hysteresis_frames": int(rng.integers(1, 301)), "hysteresis_margin": float(rng.uniform(0, 1))},
        lambda: {"confidence_threshold": float(rng.uniform(0, 1))},
        lambda: {"max_faces": int(rng.integers(0, 65)), "min_face_size": int(rng.choice([0, 24, 200, 4096]))},
        lambda: {"track_max_missed": int(rng.integers(0, 1001)), "track_iou_threshold": float(rng.uniform(0, 1))},
    ]
    invalid = [
        {"smoothing_alpha": 0.0}, {"max_faces": 65}, {"min_face_size": -1}, {"smoothing": "kalman"},
        {"backend": "tflite"}, {"model_path": "/nonexistent.onnx"}, {"confidence_threshold": 1.5},
        {"smoothing_window": "five"},
    ]
    feeder = Feeder(pub, _image(face_frames["one"]), rate=15)
    try:
        for i in range(40):
            if i % 5 == 4:
                bad = invalid[(i // 5) % len(invalid)]
                assert set_params(**bad) == [False] * len(bad), f"invalid change accepted: {bad}"
            else:
                change = valid[int(rng.integers(0, len(valid)))]()
                assert all(set_params(**change)), f"valid change refused: {change}"
            time.sleep(0.05)
            assert node.popen.poll() is None, node.output()[-3000:]
        assert all(set_params(enabled=True, min_face_size=24, max_faces=8, confidence_threshold=0.0))
        settled = time.monotonic()
        rh.wait_until(lambda: any(t > settled + 0.3 and len(m.faces) == 1 for t, m in client.snapshot(faces)),
                      30, "a FaceEmotionArray with the face after the parameter churn")
    finally:
        feeder.stop()
    assert node.popen.poll() is None
    _no_traceback(node)


def test_lifecycle_node_with_garbage_model_stays_unconfigured(ros_env, node_procs, client, tmp_path):
    """The managed node (--lifecycle) with a garbage model: configure fails with a logged reason, the
    node stays alive in 'unconfigured' (a supervisor can fix the file and retry), SIGTERM exits 0."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    bad = tmp_path / "model.onnx"
    bad.write_bytes(np.random.default_rng(1).bytes(20_000))
    node = node_procs.start(ros_env, params=rh.node_params(bad), extra_args=["--lifecycle"])
    change = client.node.create_client(ChangeState, "/fer_node/change_state")
    get = client.node.create_client(GetState, "/fer_node/get_state")
    assert change.wait_for_service(timeout_sec=START_TIMEOUT) and get.wait_for_service(timeout_sec=10)

    def call(srv, req):
        fut = srv.call_async(req)
        rh.wait_until(fut.done, 60, f"{srv.srv_name}")
        return fut.result()

    result = call(change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
    assert not result.success
    assert call(get, GetState.Request()).current_state.label == "unconfigured"
    assert node.popen.poll() is None, node.output()[-3000:]
    assert "configure failed" in node.output() and str(bad) in node.output()
    assert node.stop(signal.SIGTERM, timeout=15) == 0, node.output()[-3000:]
    assert "Traceback" not in node.stderr(), node.stderr()[-3000:]
