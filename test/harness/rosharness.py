"""Running fer_node / fer_camera as real processes and talking to them over DDS.

Shared by the tests (test/conftest.py puts test/harness/ on sys.path) and by
benchmarks/end_to_end.py, fuzz_node.py, soak.py and vs_fer.py.
Every wait is bounded; every process started here is stopped (SIGINT, then SIGKILL) by whoever
started it, by its own pid.

    env = isolated_env(log_dir)                   # unique ROS_DOMAIN_ID, localhost only
    node = NodeProcess.start(env, tmp, params={"model_path": str(model)})
    client = RosClient(env)
    pub = client.publisher(Image, "/image", reliable=True)
    faces = client.collect(FaceEmotionArray, "/fer_node/faces")
    ...
    node.stop(); client.close()
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED_DIR = Path(os.environ.get("FER_SHARED_DIR", REPO.parent / "shared"))
MEDIA = SHARED_DIR / "media"
FASTDDS_PROFILE = REPO / "config" / "fastdds_shm.xml"
MAKE_MODEL = HERE / "_make_model.py"
SHIPPED_MODEL = REPO / "fer_perception" / "models" / "arch1_fer2013.onnx"

def patience(timeout: float) -> float:
    """``timeout`` stretched on a machine busier than its cores (a load average of 2x the cores
    doubles it, at most 4x); ``FER_TEST_TIMEOUT_SCALE`` fixes the factor. Only ever lengthens
    waits for something that must happen, so a real hang still fails, just later."""
    fixed = os.environ.get("FER_TEST_TIMEOUT_SCALE")
    if fixed:
        return timeout * float(fixed)
    try:
        load = os.getloadavg()[0] / max(len(os.sched_getaffinity(0)), 1)
    except (OSError, AttributeError):
        load = 1.0
    return timeout * min(max(load, 1.0), 4.0)


_domains = itertools.count((os.getpid() * 13) % 97 + 101)


def isolated_env(log_dir: Path, domain_id: int | None = None) -> dict[str, str]:
    """The environment of test/conftest.py's isolated_ros_env (own domain, localhost, own log dir).

    Tests use the ``ros_env`` fixture; the benchmark scripts, which run outside pytest, use this.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain_id if domain_id is not None else next(_domains) % 200 + 1),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOG_DIR=str(log_dir),
        RCUTILS_LOGGING_BUFFERED_STREAM="0",
        PYTHONUNBUFFERED="1",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    if FASTDDS_PROFILE.exists():  # under the name this Fast DDS reads (3: FASTDDS_, 2.x/jazzy: FASTRTPS_)
        from fer_perception.ros.dds import profile_environment

        env.update(profile_environment(str(FASTDDS_PROFILE), env))
    return env


# --- models ------------------------------------------------------------------------------------------


def _random_model_key() -> str:
    """Changes whenever the code that makes the model changes."""
    h = hashlib.sha256()
    for p in (MAKE_MODEL, HERE / "_make_random_model.py",  # random_arch1: the recipe MAKE_MODEL uses
              REPO / "training/fer_training/models.py", REPO / "training/fer_training/export.py"):
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def random_model(cache_dir: Path) -> Path:
    """A random-weight ARCH-1 ONNX model (built once with TensorFlow in a subprocess, then cached)."""
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("fer_training") is None:
        raise RuntimeError("TensorFlow / fer_training not installed (scripts/bootstrap.sh dev): no test model")
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"arch1_random_{_random_model_key()}.onnx"
    if not path.exists():
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        r = subprocess.run([sys.executable, str(MAKE_MODEL), str(path)], env=env, capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0 or not path.exists():
            raise RuntimeError(f"random model export failed:\n{r.stdout}\n{r.stderr[-3000:]}")
    return path


def default_model(cache_dir: Path | None = None) -> tuple[Path, str]:
    """(model path, what it is): $FER_MODEL, else the shipped trained model, else a random one."""
    if os.environ.get("FER_MODEL"):
        return Path(os.environ["FER_MODEL"]), "FER_MODEL"
    if SHIPPED_MODEL.exists():
        return SHIPPED_MODEL, "shipped (trained)"
    cache = cache_dir or (REPO / ".pytest_cache" / "d" / "fer_node_models")
    return random_model(cache), "random weights (no trained model shipped yet)"


# --- processes ---------------------------------------------------------------------------------------


class ManagedProcess:
    """A child process whose output is read back from files; every wait is bounded."""

    popen: subprocess.Popen
    kill_wait = 10.0

    def output(self) -> str:
        raise NotImplementedError

    def wait_for_output(self, text: str, timeout: float) -> None:
        timeout = patience(timeout)
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
        return self.popen.wait(timeout=patience(timeout))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        """Send ``sig`` (if it still runs), wait ``timeout`` s, then SIGKILL. Returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=patience(timeout))
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=self.kill_wait)
        return self.popen.returncode


class NodeProcess(ManagedProcess):
    """``python -m <module>`` (fer_perception.ros.node by default) with its stdout and stderr in files."""

    def __init__(self, popen: subprocess.Popen, out_path: Path, err_path: Path) -> None:
        self.popen = popen
        self.out_path, self.err_path = out_path, err_path

    @classmethod
    def start(cls, env: dict[str, str], log_dir: Path, *, params: dict[str, Any] | None = None,
              remaps: dict[str, str] | None = None, module: str = "fer_perception.ros.node",
              extra_args: list[str] | None = None, name: str = "fer_node") -> "NodeProcess":
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", module, *(extra_args or []), "--ros-args"]
        for k, v in (params or {}).items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            args += ["-p", f"{k}:={v}"]
        for k, v in (remaps or {}).items():
            args += ["-r", f"{k}:={v}"]
        out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
        popen = subprocess.Popen(args, env=env, stdout=open(out_path, "w"), stderr=open(err_path, "w"),
                                 cwd=str(REPO), start_new_session=True)
        return cls(popen, out_path, err_path)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)


class LoggedProcess(ManagedProcess):
    """``python -m <module> <args>`` with stdout and stderr in one log file."""

    kill_wait = 5.0

    def __init__(self, module: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        self.popen = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, cwd=str(REPO))

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        rc = super().stop(sig, timeout)
        if not self._log.closed:
            self._log.close()
        return rc


def node_params(model: Path, **overrides: Any) -> dict[str, Any]:
    """fer_node parameters for a test: onnxruntime, given model, fast diagnostics."""
    params: dict[str, Any] = dict(model_path=str(model), backend="onnxruntime", detector="blazeface",
                                  diagnostics_period=0.2, publish_annotated=False)
    params.update(overrides)
    return params


# --- in-process ROS client ---------------------------------------------------------------------------


class RosClient:
    """An rclpy node in this process (own Context), spun by a background thread."""

    def __init__(self, env: dict[str, str], name: str = "hardening_client") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        for key in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
            os.environ.setdefault(key, env.get(key, ""))
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
        self.node = rclpy.create_node(name, context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self.ctx.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # ExternalShutdownException or a context torn down by close()
            pass

    @staticmethod
    def qos(reliable: bool, depth: int = 10):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)

    def publisher(self, msg_type: Any, topic: str, reliable: bool = True, depth: int = 10):
        return self.node.create_publisher(msg_type, topic, self.qos(reliable, depth))

    def collect(self, msg_type: Any, topic: str, qos: Any = 100,
                callback: Callable[[Any], None] | None = None, stamped: bool = True) -> list:
        """Messages on ``topic``, appended under self.lock: (monotonic receive time, msg) pairs, or
        just the messages with ``stamped=False``."""
        out: list = []

        def cb(msg):
            now = time.monotonic()
            with self.lock:
                out.append((now, msg) if stamped else msg)
            if callback is not None:
                callback(msg)

        self.node.create_subscription(msg_type, topic, cb, qos)
        return out

    def snapshot(self, items: list) -> list:
        with self.lock:
            return list(items)

    def close(self) -> None:
        import rclpy

        rclpy.try_shutdown(context=self.ctx)
        self._thread.join(timeout=5)
        try:
            self.node.destroy_node()
        except Exception:
            pass


class ClosedLoop:
    """One frame in flight: publish an Image to fer_node, wait for the FaceEmotionArray that answers it.

    The answer is matched by ``header.frame_id`` (the node copies the image's header), so a late answer
    to an earlier frame is never taken for this one. Reliable QoS both ways: a lost frame is the
    node's doing, not the transport's.
    """

    def __init__(self, client: RosClient, image_topic: str, faces_topic: str = "/fer_node/faces") -> None:
        from fer_msgs.msg import FaceEmotionArray
        from sensor_msgs.msg import Image

        self._answered = threading.Event()
        self._expect: dict[str, Any] = {"id": None, "t": 0.0, "faces": 0}
        client.node.create_subscription(FaceEmotionArray, faces_topic, self._on_faces, client.qos(True, 10))
        self.publisher = client.publisher(Image, image_topic, reliable=True, depth=10)

    def _on_faces(self, msg: Any) -> None:
        if msg.header.frame_id == self._expect["id"]:
            self._expect.update(t=time.monotonic(), faces=len(msg.faces))
            self._answered.set()

    def wait_for_node(self, timeout: float = 120.0) -> None:
        wait_for_subscribers(self.publisher, 1, timeout)

    def send(self, msg: Any, frame_id: str, timeout: float) -> tuple[float, int] | None:
        """Publish ``msg`` as ``frame_id``; (seconds to the answer, faces in it), or None after ``timeout``."""
        msg.header.frame_id = self._expect["id"] = frame_id
        self._answered.clear()
        t0 = time.monotonic()
        self.publisher.publish(msg)
        if not self._answered.wait(timeout):
            return None
        return self._expect["t"] - t0, self._expect["faces"]


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    timeout = patience(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for_subscribers(pub: Any, count: int = 1, timeout: float = 30.0) -> None:
    wait_until(lambda: pub.get_subscription_count() >= count, timeout, f"{count} subscriber(s) on {pub.topic_name}")


# --- diagnostics ---------------------------------------------------------------------------------------


def status_of(diag_items: list, node_name: str = "fer_node", after: float = 0.0):
    """Newest (t, DiagnosticStatus) of ``node_name`` received after monotonic time ``after``."""
    for t, arr in reversed(diag_items):
        if t < after:
            break
        for st in arr.status:
            if st.name.startswith(node_name + ":"):
                return t, st
    return None


def level(status: Any) -> int:
    lv = status.level
    return lv[0] if isinstance(lv, (bytes, bytearray)) else int(lv)


def values(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


# --- frames ------------------------------------------------------------------------------------------


def face_image(name: str = "obama.jpg"):
    """A shared media image as BGR (raises FileNotFoundError when ../shared is absent)."""
    import cv2

    path = MEDIA / name
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path} not found (../shared/media)")
    return img


def fit_640x480(bgr):
    """Resize (keeping aspect) and pad to 640 x 480, centred, black borders."""
    import cv2
    import numpy as np

    h, w = bgr.shape[:2]
    scale = min(640 / w, 480 / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((480, 640, 3), np.uint8)
    y0, x0 = (480 - nh) // 2, (640 - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def face_crops() -> list:
    """Face regions (1.7 x the BlazeFace box) of the shared photos, largest first per photo (the
    skimage astronaut when ../shared is absent): what the synthetic benchmark frames are made of."""
    import cv2

    from fer_perception.detection import create_detector

    det = create_detector("blazeface", backend="onnxruntime")
    images = [img for img in (cv2.imread(str(MEDIA / n)) for n in ("obama.jpg", "two_people.jpg")) if img is not None]
    if not images:
        from skimage import data

        images = [cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)]
    crops = []
    for img in images:
        for d in sorted(det.detect(img), key=lambda d: -d.area):
            x, y, w, h = d.box
            cx, cy, side = x + w / 2, y + h / 2, 1.7 * max(w, h)
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            x1, y1 = int(min(img.shape[1], cx + side / 2)), int(min(img.shape[0], cy + side / 2))
            crops.append(img[y0:y1, x0:x1].copy())
    return crops


def compose_frame(n_faces: int, crops: list, width: int = 640, height: int = 480):
    """BGR frame: vertical grey-blue gradient with ``n_faces`` pasted crops (190 px for one face,
    170 px each for several)."""
    import cv2
    import numpy as np

    ramp = np.linspace(70, 170, height, dtype=np.float32)[:, None]
    frame = np.dstack([np.repeat(ramp + 20, width, 1), np.repeat(ramp, width, 1), np.repeat(ramp - 20, width, 1)])
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    size = 190 if n_faces == 1 else 170
    slots = [(width // 2, height // 2)] if n_faces == 1 else [
        (int(width * (k + 0.5) / n_faces), height // 2 + (30 if k % 2 else -30)) for k in range(n_faces)]
    for k, (cx, cy) in enumerate(slots):
        crop = cv2.resize(crops[k % len(crops)], (size, size), interpolation=cv2.INTER_AREA)
        frame[cy - size // 2: cy - size // 2 + size, cx - size // 2: cx - size // 2 + size] = crop
    return frame


# --- documents -----------------------------------------------------------------------------------------


def replace_doc_block(path: Path, begin: str, end: str, text: str, *, heading: str | None = None,
                      must_exist: bool = False) -> None:
    """Put ``text`` between the marker lines ``begin`` and ``end`` of the Markdown file ``path``.

    An existing block is replaced and everything around it kept. Without one: ``must_exist`` raises;
    else the block goes right under ``heading`` when the file has that line, or at the end (under
    ``heading`` when given); a missing file is created with a "# Benchmarks" title.
    """
    import re

    path = Path(path)
    block = f"{begin}\n{text.strip()}\n{end}"
    doc = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: block, doc, count=1)
    elif must_exist:
        raise RuntimeError(f"{path} has no {begin} ... {end} block")
    elif heading and heading in doc:
        head, tail = doc.split(heading, 1)
        doc = f"{head}{heading}\n\n{block}\n" + (f"\n{tail.lstrip()}" if tail.strip() else "")
    else:
        doc = (doc.rstrip("\n") if doc else "# Benchmarks") + "\n\n" + (f"{heading}\n\n" if heading else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc)


def update_doc_block(path: Path, name: str, text: str) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``."""
    replace_doc_block(path, f"<!-- {name}:begin -->", f"<!-- {name}:end -->", text, must_exist=True)


def doc_results(path: Path) -> dict[str, dict]:
    """The ``<!-- results name {json} -->`` lines of ``path``: name -> dict."""
    import json
    import re

    out = {}
    for m in re.finditer(r"<!-- results (\w+) (\{.*?\}) -->", Path(path).read_text()):
        out[m.group(1)] = json.loads(m.group(2))
    return out


def machine_load() -> str:
    """One line on what else ran: load average and the busiest other processes."""
    import psutil

    la = os.getloadavg()
    busy, paused = [], []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            argv = p.info["cmdline"] or []
        except Exception:
            continue
        for arg in argv[:3]:
            name = os.path.basename(arg)
            if name in ("fer-train", "fer-export", "fer-evaluate", "fer-experiments"):
                (paused if p.info.get("status") == psutil.STATUS_STOPPED else busy).append(name)
    extra = f"; running alongside: {', '.join(sorted(set(busy)))}" if busy else ""
    extra += f"; paused (SIGSTOP) for the run: {', '.join(sorted(set(paused)))}" if paused else ""
    return f"load average {la[0]:.1f}/{la[1]:.1f}/{la[2]:.1f} on {os.cpu_count()} CPUs{extra}"
