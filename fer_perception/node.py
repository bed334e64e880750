"""fer_node: facial expression recognition on a camera topic.

    fer_node --ros-args -r image:=/camera/image_raw [--params-file config/fer.yaml] [-p key:=value]
    fer_node --lifecycle --ros-args ...          # managed node: configure/activate via lifecycle services

Per frame: convert -> detect -> align -> one batched inference for all faces -> track -> smooth ->
publish ``~/faces`` (fer_msgs/FaceEmotionArray, with the source image's header, also when no face was
found). The label order is published latched on ``~/labels`` (std_msgs/String, JSON list).
``~/annotated`` (sensor_msgs/Image) is drawn only while someone subscribes. ``/diagnostics`` carries
rates, latencies, drops, bad-input counts and the backend state (see fer_perception.diagnostics).

Threading: the image subscription callback only stores the newest message (an older one that was
not processed yet is counted as dropped) and wakes a worker thread, which processes the newest frame.
So the node never builds a backlog, whatever the executor, and heavy work never blocks callbacks.

Classes:
* :class:`FerNode` - a plain rclpy Node that configures and activates itself (component style:
  construct it with a ``context``/``cli_args``/``parameter_overrides`` and add it to any executor,
  e.g. a MultiThreadedExecutor next to other nodes).
* :class:`FerLifecycleNode` - the managed variant: the model is loaded in ``configure``, the image
  subscription exists only while ``active``; ``deactivate`` switches perception off without
  killing the process.
Both also honour the live ``enabled`` parameter (false = unsubscribe and stop processing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from typing import Any, Callable

import numpy as np
import rclpy
import rclpy.utilities
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from fer_perception.annotate import FaceAnnotation, draw_faces
from fer_perception.diagnostics import PipelineStats, to_diagnostic_status
from fer_perception.errors import FerError, ImageConversionError, ModelLoadError
from fer_perception.labels import EMOTION_LABELS, valence_arousal
from fer_perception.params import ParameterSet, ParameterValueError, load_specs
from fer_perception.smoothing import SmoothingConfig, TrackSmoother
from fer_perception.tracking import FaceTracker, select_faces

NODE_KEY = "fer_node"
EXIT_STARTUP_ERROR = 2  # model/parameters/messages unusable: nothing was started
EXIT_BACKEND_ERROR = 3  # backend failed at run time and exit_on_backend_error is true

PipelineFactory = Callable[[dict], Any]


def max_faces_capacity() -> int:
    """Largest allowed max_faces (the upper end of its range in config/fer.yaml): the pipeline's
    batch is sized for it, so max_faces can change live."""
    spec = load_specs(NODE_KEY)["max_faces"]
    return int(spec.range[1]) if spec.range else 64


def default_pipeline_factory(options: dict) -> Any:
    """FacePipeline from the node's parameters (model_path '' = the shipped model)."""
    from fer_perception.inference import resolve_model_path
    from fer_perception.pipeline import FacePipeline

    return FacePipeline.from_options(
        resolve_model_path(options["model_path"]),
        backend=options["backend"],
        detector=options["detector"],
        precision=options["precision"],
        threads=options["threads"] or None,
        min_face_size=options["min_face_size"],
        max_faces=max_faces_capacity(),
    )


def pipeline_info(pipeline: Any, options: dict) -> dict[str, str]:
    """Backend/model/detector in use, for diagnostics and the start-up log line."""
    backend = getattr(pipeline, "backend", None)
    detector = getattr(pipeline, "detector", None)
    info = {
        "backend": getattr(backend, "name", None) or getattr(pipeline, "backend_name", None) or options["backend"],
        "model": getattr(backend, "model_path", None) or getattr(pipeline, "model_path", None)
        or options["model_path"] or "(shipped model)",
        "detector": getattr(detector, "name", None) or options["detector"],
    }
    if isinstance(getattr(detector, "backend", None), str):  # BlazeFace runs on an inference backend too
        info["detector_backend"] = detector.backend
    describe = getattr(backend, "describe", None)
    if callable(describe):
        try:
            d = describe()
            if d.get("providers"):
                info["providers"] = ",".join(d["providers"])
            info["precision"] = d.get("precision", options["precision"])
        except Exception:  # describe() is informative only
            pass
    return {k: str(v) for k, v in info.items()}


def pipeline_stage_times(pipeline: Any) -> dict[str, float] | None:
    """Seconds per stage of the last ``process`` call, if the pipeline reports them."""
    t = getattr(pipeline, "last_timings", None)
    if t is None:
        return None
    d = t.as_dict() if hasattr(t, "as_dict") else t
    if not isinstance(d, dict):
        return None
    return {k[:-3]: float(v) * 1e-3 for k, v in d.items() if k.endswith("_ms") and isinstance(v, (int, float))}


def apply_face_limits(pipeline: Any, min_face_size: int, max_faces: int) -> None:
    """Let the pipeline drop small/extra faces before inference (it sorts largest first)."""
    if hasattr(pipeline, "min_face_size"):
        pipeline.min_face_size = int(min_face_size)
    if hasattr(pipeline, "max_faces"):
        pipeline.max_faces = int(max_faces) if max_faces > 0 else max_faces_capacity()


def _reliability(name: str) -> ReliabilityPolicy:
    return ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT


class FerCore:
    """Everything fer_node does, attached to an rclpy node (plain or lifecycle).

    States: unconfigured -> configure() -> inactive -> activate() -> active (subscribed while
    ``enabled``) -> deactivate() -> inactive -> cleanup() -> unconfigured.
    """

    def __init__(self, node: Node, pipeline_factory: PipelineFactory | None = None) -> None:
        self.node = node
        self.log = node.get_logger()
        self._factory = pipeline_factory or default_pipeline_factory
        self.params = ParameterSet(node, NODE_KEY, on_change=self._on_params_changed)
        p = self.params
        self.stats = PipelineStats()
        self.pipeline: Any = None
        self.info: dict[str, str] = {}
        self.configured = False
        self.active = False
        self.exit_code: int | None = None
        self.on_exit_request: Callable[[int], None] | None = None

        self._slot_lock = threading.Lock()
        self._latest: Any = None
        self._latest_t = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._proc_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._sub = None
        self._logged_bad_kinds: set[str] = set()
        self._logged_internal: set[str] = set()
        self._pending_smoothing: SmoothingConfig | None = None
        self._reset_tracks = False

        self.tracker = FaceTracker.from_params(p.values)
        self.smoother = TrackSmoother(self._smoothing_config())

        self._faces_pub = self._labels_pub = self._annotated_pub = None
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._diag_group = MutuallyExclusiveCallbackGroup()
        self._diag_pub = node.create_publisher(_msgs().DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = node.create_timer(
            p["diagnostics_period"], self.publish_diagnostics, callback_group=self._diag_group
        )
        self.input_topic = self._resolve_input_topic()

    # --- parameters ----------------------------------------------------------------------------
    def _smoothing_config(self) -> SmoothingConfig:
        return SmoothingConfig.from_params(self.params.values)

    def _on_params_changed(self, changed: dict[str, Any]) -> None:
        smoothing_keys = {"smoothing", "smoothing_alpha", "smoothing_window", "hysteresis_margin",
                          "hysteresis_frames", "confidence_threshold"}
        if smoothing_keys & changed.keys():
            self._pending_smoothing = self._smoothing_config()
        if ({"min_face_size", "max_faces"} & changed.keys()) and self.pipeline is not None:
            apply_face_limits(self.pipeline, self.params["min_face_size"], self.params["max_faces"])
        if "track_iou_threshold" in changed:
            self.tracker.iou_threshold = changed["track_iou_threshold"]
        if "track_max_missed" in changed:
            self.tracker.max_missed = changed["track_max_missed"]
        if "enabled" in changed and self.active:
            if changed["enabled"]:
                self._subscribe()
                self.log.info("enabled: perception switched on")
            else:
                self._unsubscribe()
                self.log.info("disabled: perception switched off (image subscription dropped)")
        self.log.info("parameters updated: " + ", ".join(f"{k}={v!r}" for k, v in changed.items()))

    def _resolve_input_topic(self) -> str:
        base = self.node.resolve_topic_name("image")
        return base + "/compressed" if self.params["transport"] == "compressed" else base

    # --- lifecycle -----------------------------------------------------------------------------
    def configure(self) -> None:
        """Load the model and create the publishers. Raises FerError when the model is unusable."""
        if self.configured:
            return
        p = self.params
        options = {k: p[k] for k in ("model_path", "backend", "detector", "precision", "threads",
                                     "min_face_size", "max_faces")}
        self.pipeline = self._factory(options)
        apply_face_limits(self.pipeline, p["min_face_size"], p["max_faces"])
        self.info = pipeline_info(self.pipeline, options)
        m = _msgs()
        self._faces_pub = self.node.create_publisher(m.FaceEmotionArray, "~/faces", 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
        self._labels_pub = self.node.create_publisher(m.String, "~/labels", latched)
        self._labels_pub.publish(m.String(data=json.dumps(list(EMOTION_LABELS))))
        annotated_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                   history=HistoryPolicy.KEEP_LAST)
        self._annotated_pub = self.node.create_publisher(m.Image, "~/annotated", annotated_qos)
        self.configured = True
        self.log.info(
            f"configured: backend {self.info['backend']}, model {self.info['model']}, "
            f"detector {self.info['detector']}"
            + (f" on {self.info['detector_backend']}" if "detector_backend" in self.info else "")
        )

    def activate(self) -> None:
        if not self.configured:
            raise RuntimeError("activate() before configure()")
        if self.active:
            return
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="fer_node_worker", daemon=True)
        self._worker.start()
        self.active = True
        self.stats.reset_input_clock()
        if self.params["enabled"]:
            self._subscribe()
        self.log.info(
            f"active: {self.params['transport']} images from {self.input_topic} "
            f"({self.params['qos_reliability']}, depth {self.params['qos_depth']})"
            + ("" if self.params["enabled"] else "; enabled=false, not subscribed until enabled")
        )

    def deactivate(self) -> None:
        if not self.active:
            return
        self._unsubscribe()
        self.active = False
        self._stop.set()
        self._wake.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=10.0)
        self._worker = None
        if self.node.context.ok():  # not while shutting down (rosout is gone by then)
            self.log.info("inactive: image subscription dropped")

    def cleanup(self) -> None:
        self.deactivate()
        for pub in (self._faces_pub, self._labels_pub, self._annotated_pub):
            if pub is not None:
                self.node.destroy_publisher(pub)
        self._faces_pub = self._labels_pub = self._annotated_pub = None
        close = getattr(self.pipeline, "close", None)
        if callable(close):
            close()
        self.pipeline = None
        self.configured = False

    def state(self) -> str:
        if not self.configured:
            return "unconfigured"
        if not self.active:
            return "inactive"
        return "active" if self.params["enabled"] else "disabled"

    # --- input ---------------------------------------------------------------------------------
    def _subscribe(self) -> None:
        if self._sub is not None:
            return
        m = _msgs()
        qos = QoSProfile(depth=self.params["qos_depth"], reliability=_reliability(self.params["qos_reliability"]),
                         durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        msg_type = m.CompressedImage if self.params["transport"] == "compressed" else m.Image
        self._sub = self.node.create_subscription(
            msg_type, self.input_topic, self._on_image, qos, callback_group=self._image_group
        )
        self.stats.reset_input_clock()

    def _unsubscribe(self) -> None:
        if self._sub is not None:
            self.node.destroy_subscription(self._sub)
            self._sub = None
        with self._slot_lock:
            self._latest = None
        with self._proc_lock:  # wait for the frame in flight, then start tracks afresh
            self._reset_tracks = True

    def _on_image(self, msg: Any) -> None:
        now = time.monotonic()
        with self._slot_lock:
            dropped = self._latest is not None
            self._latest, self._latest_t = msg, now
        self.stats.on_received(now, dropped)
        self._wake.set()

    # --- worker --------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(timeout=0.25):
                continue
            with self._slot_lock:
                msg, received = self._latest, self._latest_t
                self._latest = None
                self._wake.clear()
            if msg is None or self._stop.is_set():
                continue
            with self._proc_lock:
                try:
                    self._process(msg, received)
                except Exception as e:  # a bug, not bad input: report once per type, keep going
                    if not self.node.context.ok():
                        return
                    key = type(e).__name__
                    if key not in self._logged_internal:
                        self._logged_internal.add(key)
                        self.log.error(f"internal error while processing a frame ({key}: {e}); continuing")

    def _convert(self, msg: Any) -> np.ndarray:
        from fer_perception.image_conversion import compressed_to_bgr, image_to_bgr

        if self.params["transport"] == "compressed":
            return compressed_to_bgr(msg)
        return image_to_bgr(msg)

    def _process(self, msg: Any, received: float) -> None:
        if self._reset_tracks:
            self.smoother.forget([t.track_id for t in self.tracker.tracks])
            self.tracker.reset()
            self._reset_tracks = False
        if self._pending_smoothing is not None:
            cfg, self._pending_smoothing = self._pending_smoothing, None
            self.smoother.reconfigure(cfg)

        try:
            bgr = self._convert(msg)
        except ImageConversionError as e:
            kind = getattr(e, "kind", "unknown")
            self.stats.on_bad_input(kind)
            if kind not in self._logged_bad_kinds:
                self._logged_bad_kinds.add(kind)
                self.log.warning(
                    f"bad input image ({kind}): {e} -- skipped; counted in diagnostics as "
                    f"bad_input.{kind}, further '{kind}' images are not logged"
                )
            return

        try:
            results = list(self.pipeline.process(bgr))
            for r in results:
                probs = np.asarray(r.probabilities, dtype=np.float32)
                if probs.shape != (len(EMOTION_LABELS),) or not np.all(np.isfinite(probs)):
                    raise FerError(f"the model returned invalid probabilities {probs.tolist()} "
                                   f"(expected {len(EMOTION_LABELS)} finite values)")
        except Exception as e:
            if self.stats.on_backend_error(e):
                self.log.error(f"inference backend failed: {type(e).__name__}: {e}")
            if self.params["exit_on_backend_error"]:
                self.log.fatal("exit_on_backend_error is true: shutting down")
                self.request_exit(EXIT_BACKEND_ERROR)
            return

        p = self.params
        keep = select_faces([tuple(r.box) for r in results], p["min_face_size"], p["max_faces"])
        results = [results[i] for i in keep]
        update = self.tracker.update([tuple(r.box) for r in results])
        self.smoother.forget(update.removed_ids)

        m = _msgs()
        height, width = bgr.shape[:2]
        out = m.FaceEmotionArray()
        out.header = msg.header
        out.labels = list(EMOTION_LABELS)
        annotations = []
        for r, track_id in zip(results, update.ids):
            s = self.smoother.update(track_id, r.probabilities)
            va = valence_arousal(s.probabilities)
            x, y, w, h = (int(v) for v in r.box)
            x0, y0 = min(max(x, 0), width), min(max(y, 0), height)
            x1, y1 = min(max(x + w, 0), width), min(max(y + h, 0), height)
            face = m.FaceEmotion()
            face.roi = m.RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0,
                                          do_rectify=False)
            face.label = s.label
            face.confidence = s.confidence
            face.probabilities = s.probabilities.tolist()
            face.track_id = int(track_id)
            face.valence, face.arousal = float(va[0]), float(va[1])
            score = getattr(r, "detection_score", None)
            face.detection_score = float(score) if score is not None else 1.0
            out.faces.append(face)
            annotations.append(FaceAnnotation((x0, y0, x1 - x0, y1 - y0), s.label, s.confidence, int(track_id),
                                              s.probabilities))
        self._faces_pub.publish(out)
        done = time.monotonic()
        age = None
        stamp = msg.header.stamp
        if stamp.sec or stamp.nanosec:
            age = (self.node.get_clock().now().nanoseconds - (stamp.sec * 10**9 + stamp.nanosec)) * 1e-9
            if not 0.0 <= age < 60.0:  # stamps from another clock (sim time, recorded data)
                age = None
        if self.stats.on_processed(done, done - received, len(out.faces), age, pipeline_stage_times(self.pipeline)):
            self.log.info("inference backend recovered")

        if (p["publish_annotated"] and self._annotated_pub is not None
                and self._annotated_pub.get_subscription_count() > 0):
            from fer_perception.image_conversion import numpy_to_image

            drawn = draw_faces(bgr, annotations)
            self._annotated_pub.publish(numpy_to_image(drawn, "bgr8", header=msg.header))

    def request_exit(self, code: int) -> None:
        self.exit_code = code
        self._stop.set()
        if self.on_exit_request is not None:
            self.on_exit_request(code)

    # --- diagnostics ---------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        m = _msgs()
        info = {"input_topic": self.input_topic, **self.info}
        snap = self.stats.snapshot(state=self.state(), stale_timeout=self.params["stale_timeout"], info=info)
        arr = m.DiagnosticArray()
        arr.header.stamp = self.node.get_clock().now().to_msg()
        arr.status = [to_diagnostic_status(snap, f"{self.node.get_name()}: facial expression recognition",
                                           self.info.get("backend", ""))]
        self._diag_pub.publish(arr)

    def destroy(self) -> None:
        self.deactivate()
        self._stop.set()


class _Msgs:
    """Message classes, imported once (fer_msgs may be missing: main() reports it clearly)."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from fer_msgs.msg import FaceEmotion, FaceEmotionArray
        from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
        from std_msgs.msg import String

        self.DiagnosticArray = DiagnosticArray
        self.FaceEmotion = FaceEmotion
        self.FaceEmotionArray = FaceEmotionArray
        self.CompressedImage = CompressedImage
        self.Image = Image
        self.RegionOfInterest = RegionOfInterest
        self.String = String


_MSGS: _Msgs | None = None


def _msgs() -> _Msgs:
    global _MSGS
    if _MSGS is None:
        _MSGS = _Msgs()
    return _MSGS


class FerNode(Node):
    """fer_node as a plain node: configures (loads the model) and activates on construction.

    Raises FerError (ModelLoadError, BackendUnavailableError, ...) or ParameterValueError when it
    cannot start; the node is destroyed in that case.
    """

    def __init__(self, node_name: str = "fer_node", *, pipeline_factory: PipelineFactory | None = None,
                 **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self.core = FerCore(self, pipeline_factory)
            self.core.configure()
            self.core.activate()
        except BaseException:
            core = getattr(self, "core", None)
            if core is not None:
                core.destroy()
            self.destroy_node()
            raise

    @property
    def exit_code(self) -> int | None:
        return self.core.exit_code

    def destroy_node(self) -> None:
        core = getattr(self, "core", None)
        if core is not None:
            core.destroy()
        super().destroy_node()


class FerLifecycleNode(LifecycleNode):
    """fer_node as a managed (lifecycle) node.

    configure: load the model, create the publishers (latched ~/labels). activate: subscribe and
    process. deactivate: unsubscribe (perception off, process and model stay). cleanup: release the
    model. A model that cannot be loaded makes ``configure`` fail (the node stays unconfigured and
    logs why). Parameters are declared at construction, so they can be set before ``configure``.
    """

    def __init__(self, node_name: str = "fer_node", *, pipeline_factory: PipelineFactory | None = None,
                 **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.core = FerCore(self, pipeline_factory)

    @property
    def exit_code(self) -> int | None:
        return self.core.exit_code

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.core.configure()
        except FerError as e:
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.activate()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.deactivate()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        core = getattr(self, "core", None)
        if core is not None:
            core.destroy()
        super().destroy_node()


def make_executor():
    """Executor of a single-node process: FER_EXECUTOR=events (rclpy's C++ EventsExecutor) or
    single (SingleThreadedExecutor, the default)."""
    import os

    if os.environ.get("FER_EXECUTOR", "single") == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor()
    return SingleThreadedExecutor()


def spin_once_unless_shut_down(executor, timeout_sec: float) -> bool:
    """``executor.spin_once``; False when the context was shut down meanwhile.

    SIGINT/SIGTERM shut the context down from rclpy's signal handler; one landing between a loop's
    ``ok()`` check and ``spin_once`` makes rclpy raise RCLError ("context is not valid"). That is a
    normal shutdown, not a crash; an error with the context still alive propagates.
    """
    try:
        executor.spin_once(timeout_sec=timeout_sec)
    except Exception:
        if rclpy.ok(context=executor.context):
            raise
        return False
    return True


def spin_until_exit(executor, nodes) -> int:
    """Spin until shutdown (SIGINT/SIGTERM) or a node asks to exit; returns the exit status."""
    try:
        while rclpy.ok(context=executor.context):
            codes = [n.exit_code for n in nodes if getattr(n, "exit_code", None) is not None]
            if codes:
                return codes[0]
            if not spin_once_unless_shut_down(executor, 0.25):
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    codes = [n.exit_code for n in nodes if getattr(n, "exit_code", None) is not None]
    return codes[0] if codes else 0


@contextlib.contextmanager
def ros_process(argv: list[str]):
    """The life of an entry point's ROS process, shared by fer_node, fer_camera and fer_listener.

    Sets the Fast DDS profile, initialises rclpy, yields a list the caller adds its nodes to, and
    always destroys them and shuts rclpy down. Ctrl-C and an external shutdown end the block
    quietly (no traceback); the caller then returns status 0 after the ``with``.
    """
    from fer_perception.dds import ensure_fastdds_profile

    ensure_fastdds_profile()
    rclpy.init(args=argv)
    nodes: list = []
    try:
        yield nodes
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            try:
                node.destroy_node()
            except Exception:
                pass
        rclpy.try_shutdown()


def startup_error(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_STARTUP_ERROR


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    own = rclpy.utilities.remove_ros_args(argv)[1:]
    parser = argparse.ArgumentParser(
        prog="fer_node",
        description="Facial expression recognition node. ROS arguments follow --ros-args, e.g. "
                    "fer_node --ros-args -r image:=/camera/image_raw -p backend:=onnxruntime",
    )
    parser.add_argument("--lifecycle", action="store_true",
                        help="run as a managed (lifecycle) node that waits for configure/activate")
    args = parser.parse_args(own)

    try:
        _msgs()
    except ImportError as e:
        return startup_error("fer_node", f"message packages not importable ({e}); run scripts/bootstrap.sh")

    with ros_process(argv) as nodes:
        try:
            node = (FerLifecycleNode if args.lifecycle else FerNode)()
        except (FerError, ParameterValueError, FileNotFoundError) as e:
            hint = ""
            if isinstance(e, ModelLoadError) and "model_path:=" not in " ".join(argv):
                hint = " (choose a model with: --ros-args -p model_path:=/path/to/model.onnx)"
            return startup_error("fer_node", f"{e}{hint}")
        nodes.append(node)
        executor = make_executor()
        executor.add_node(node)
        return spin_until_exit(executor, [node])
    return 0


if __name__ == "__main__":
    sys.exit(main())
