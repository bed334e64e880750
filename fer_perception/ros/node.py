"""fer_node: facial expression recognition on a camera topic.

    fer_node --ros-args -r image:=/camera/image_raw [--params-file config/fer.yaml] [-p key:=value]
    fer_node --lifecycle --ros-args ...          # managed node: configure/activate via lifecycle services

Per frame: convert -> detect -> align -> one batched inference for all faces -> track -> smooth ->
publish ``~/faces`` (fer_msgs/FaceEmotionArray, with the source image's header, also when no face was
found). The label order is published latched on ``~/labels`` (std_msgs/String, JSON list).
``~/annotated`` (sensor_msgs/Image) is drawn only while someone subscribes. ``/diagnostics`` carries
rates, latencies, drops, bad-input counts and the backend state (see fer_perception.stats).

Optional: ``publish_rep155`` adds the REP-155 (ROS4HRI) face topics (fer_perception.ros.hri_output),
``publish_vision_msgs`` a vision_msgs Detection2DArray + LabelInfo (fer_perception.ros.vision_output),
and ``input_mode: rep155`` replaces the image input by another ROS4HRI detector's faces
(fer_perception.ros.hri_input). Their message packages are imported only when switched on.

Who does what: :class:`FerRosShell` owns the ROS plumbing (parameters, subscription, publishers,
lifecycle, diagnostics timer); the per-frame work is a plain :class:`fer_perception.perception.
FramePerception` it calls, and the pipeline under it is anything that implements
:class:`fer_perception.pipeline.PerceptionPipeline`.

Threading: the image subscription callback only offers the newest message to a
:class:`fer_perception.newest_frame.NewestFrameWorker` (an older one that was not processed yet is
counted as dropped); its worker thread processes the newest frame. So the node never builds a
backlog, whatever the executor, and heavy work never blocks callbacks.

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
import json
import sys
import time
from typing import Any, Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_msgs.msg import String

from fer_perception.annotate import FaceAnnotation, draw_faces
from fer_perception.errors import FerError, ImageConversionError, ModelLoadError
from fer_perception.hri import FaceIds
from fer_perception.image_conversion import compressed_to_bgr, image_to_bgr
from fer_perception.newest_frame import NewestFrameWorker
from fer_perception.params import ParameterValueError
from fer_perception.perception import (
    NODE_KEY,
    PIPELINE_OPTIONS,
    FramePerception,
    PerceivedFace,
    pipeline_from_params,
)
from fer_perception.pipeline import FaceClassifier, PerceptionPipeline
from fer_perception.ros.diagnostics import to_diagnostic_status
from fer_perception.ros.hri_input import HriInput
from fer_perception.ros.hri_output import HriOutput
from fer_perception.ros.image_msgs import numpy_to_image
from fer_perception.ros.params import ParameterSet
from fer_perception.ros.vision_output import VisionOutput
from fer_perception.ros.process import (
    EXIT_BACKEND_ERROR,
    RosArgsError,
    non_ros_args,
    make_executor,
    ros_process,
    startup_error,
)
from fer_perception.smoothing import SmoothingConfig
from fer_perception.stats import PipelineStats
from fer_perception.tracking import FaceTracker

#: Builds the pipeline from the node's PIPELINE_OPTIONS parameters (tests pass fakes): a
#: PerceptionPipeline (detector + model) for input_mode camera, a FaceClassifier (the model alone,
#: no detector) for input_mode rep155.
PipelineFactory = Callable[[dict], "PerceptionPipeline | FaceClassifier"]

SMOOTHING_PARAMETERS = frozenset({"smoothing", "smoothing_alpha", "smoothing_window", "hysteresis_margin",
                                  "hysteresis_frames", "confidence_threshold"})


def _reliability(name: str) -> ReliabilityPolicy:
    return ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT


class _FerMessages:
    """fer_msgs, imported on first use: a missing interface build is reported by main() as one line."""

    def __init__(self) -> None:
        from fer_msgs.msg import FaceEmotion, FaceEmotionArray

        self.FaceEmotion = FaceEmotion
        self.FaceEmotionArray = FaceEmotionArray


_FER_MSGS: _FerMessages | None = None


def fer_messages() -> _FerMessages:
    global _FER_MSGS
    if _FER_MSGS is None:
        _FER_MSGS = _FerMessages()
    return _FER_MSGS


def face_message(face: PerceivedFace) -> Any:
    """fer_msgs/FaceEmotion of one perceived face."""
    x, y, w, h = face.box
    msg = fer_messages().FaceEmotion()
    msg.roi = RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False)
    msg.label = face.label
    msg.confidence = face.confidence
    msg.probabilities = face.probabilities.tolist()
    msg.track_id = face.track_id
    msg.valence, msg.arousal = face.valence, face.arousal
    msg.detection_score = face.detection_score
    return msg


class FerRosShell:
    """The ROS side of fer_node, attached to an rclpy node (plain or lifecycle).

    States: unconfigured -> configure() -> inactive -> activate() -> active (subscribed while
    ``enabled``) -> deactivate() -> inactive -> cleanup() -> unconfigured.
    """

    def __init__(self, node: Node, pipeline_factory: PipelineFactory | None = None) -> None:
        self.node = node
        self.log = node.get_logger()
        self._factory = pipeline_factory or pipeline_from_params
        self.params = ParameterSet(node, NODE_KEY, on_change=self._on_params_changed)
        p = self.params
        self.stats = PipelineStats()
        #: what the factory built: the PerceptionPipeline (camera) or FaceClassifier (rep155)
        self.pipeline: PerceptionPipeline | FaceClassifier | None = None
        #: the per-frame work of input_mode camera; None in rep155 mode (the detector's faces go to HriInput)
        self.perception: FramePerception | None = None
        self.labels: tuple[str, ...] = ()
        self.info: dict[str, str] = {}
        self.configured = False
        self.active = False
        self.exit_code: int | None = None
        self.on_exit_request: Callable[[int], None] | None = None

        self._worker = NewestFrameWorker(self._process, self._on_worker_error, name="fer_node_worker")
        self._sub = None
        self._logged_bad_kinds: set[str] = set()
        self._logged_internal: set[str] = set()

        self._faces_pub = self._labels_pub = self._annotated_pub = None
        # Optional outputs/inputs (REP-155, vision_msgs): None when off or when their messages are missing.
        self.face_ids = FaceIds()
        self._hri_out: HriOutput | None = None
        self._vision_out: VisionOutput | None = None
        self._hri_in: HriInput | None = None
        self._reported_missing: set[str] = set()
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._diag_group = MutuallyExclusiveCallbackGroup()
        self._diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = node.create_timer(
            p["diagnostics_period"], self.publish_diagnostics, callback_group=self._diag_group
        )
        self.input_topic = self._resolve_input_topic()

    # --- parameters ----------------------------------------------------------------------------
    def _on_params_changed(self, changed: dict[str, Any]) -> None:
        perception = self.perception
        if perception is not None:
            if SMOOTHING_PARAMETERS & changed.keys():
                perception.set_smoothing(SmoothingConfig.from_params(self.params.values))
            if {"min_face_size", "max_faces"} & changed.keys():
                perception.set_face_limits(self.params["min_face_size"], self.params["max_faces"])
            if "track_iou_threshold" in changed:
                perception.tracker.iou_threshold = changed["track_iou_threshold"]
            if "track_max_missed" in changed:
                perception.tracker.max_missed = changed["track_max_missed"]
        if SMOOTHING_PARAMETERS & changed.keys() and self._hri_in is not None:
            self._hri_in.set_smoothing(self._smoothing_with_labels())
        if "confidence_threshold" in changed and self._vision_out is not None:
            self._vision_out.publish_label_info(changed["confidence_threshold"])
        if "enabled" in changed and self.active:
            if changed["enabled"]:
                self._subscribe()
                self.log.info("enabled: perception switched on")
            else:
                self._unsubscribe()
                self.log.info("disabled: perception switched off (image subscription dropped)")
        self.log.info("parameters updated: " + ", ".join(f"{k}={v!r}" for k, v in changed.items()))

    def _resolve_input_topic(self) -> str:
        if self.params["input_mode"] == "rep155":
            return "/humans/faces/tracked"
        base = self.node.resolve_topic_name("image")
        return base + "/compressed" if self.params["transport"] == "compressed" else base

    # --- lifecycle -----------------------------------------------------------------------------
    def configure(self) -> None:
        """Load the model (and, for input_mode camera, the detector) and create the publishers.
        Raises FerError when the model is unusable."""
        if self.configured:
            return
        p = self.params
        options = {k: p[k] for k in PIPELINE_OPTIONS}
        pipeline = self._factory(options)
        self.pipeline = pipeline
        self.labels = tuple(pipeline.labels)
        self._adopt_model_threshold(pipeline)
        if p["input_mode"] != "rep155":
            self.perception = FramePerception(
                pipeline, FaceTracker.from_params(p.values), SmoothingConfig.from_params(p.values),
                min_face_size=p["min_face_size"], max_faces=p["max_faces"])
        self.info = pipeline.info().as_dict()
        m = fer_messages()
        self._faces_pub = self.node.create_publisher(m.FaceEmotionArray, "~/faces", 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
        self._labels_pub = self.node.create_publisher(String, "~/labels", latched)
        self._labels_pub.publish(String(data=json.dumps(list(self.labels))))
        annotated_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                   history=HistoryPolicy.KEEP_LAST)
        self._annotated_pub = self.node.create_publisher(Image, "~/annotated", annotated_qos)
        try:
            self._configure_hri_and_vision(pipeline)
        except BaseException:  # leave nothing half-configured (a lifecycle node may configure again)
            self.cleanup()
            raise
        self.configured = True
        self.log.info(
            f"configured: backend {self.info['backend']}, model {self.info['model']}, "
            f"detector {self.info['detector']}"
            + (f" on {self.info['detector_backend']}" if "detector_backend" in self.info else "")
        )

    def _smoothing_with_labels(self) -> SmoothingConfig:
        return SmoothingConfig.from_params(self.params.values, labels=self.labels)

    def _missing(self, option: str, package: str, error: Exception) -> None:
        """An optional output whose message package is missing: said once, the node runs on."""
        if option in self._reported_missing:
            return
        self._reported_missing.add(option)
        self.log.warning(
            f"{option} needs the {package} messages, which are not importable here ({error}); that output "
            f"is off, everything else runs. Build {package} into this environment (README: 'REP-155 and "
            f"vision_msgs') or source a ROS 2 install that has ros-<distro>-{package.replace('_', '-')}.")

    def _configure_hri_and_vision(self, pipeline: PerceptionPipeline | FaceClassifier) -> None:
        p = self.params
        if p["input_mode"] == "rep155":
            if not isinstance(pipeline, FaceClassifier):
                raise FerError("input_mode rep155 needs a pipeline that classifies aligned faces (FaceClassifier)")
            try:
                self._hri_in = HriInput(
                    self.node, pipeline, self._smoothing_with_labels(), p["rep155_max_wait"], self.stats,
                    on_bad_input=self._on_rep155_bad_input, on_backend_error=self._on_rep155_backend_error)
            except ImportError as e:
                # Unlike an optional output, this mode has nothing else to do: a start-up error.
                raise FerError(f"input_mode rep155 needs the hri_msgs messages, which are not importable ({e}); "
                               f"build them (README: 'REP-155 and vision_msgs')") from e
        if p["publish_rep155"]:
            if p["input_mode"] == "rep155":
                self.log.info("publish_rep155 ignored in input_mode rep155 (the detector publishes the face "
                              "topics; this node adds /humans/faces/<id>/expression)")
            else:
                try:
                    self._hri_out = HriOutput(self.node, self.face_ids,
                                              (p["rep155_face_width"], p["rep155_face_height"]))
                except ImportError as e:
                    self._missing("publish_rep155", "hri_msgs", e)
        if p["publish_vision_msgs"]:
            try:
                self._vision_out = VisionOutput(self.node, self.labels, self.face_ids,
                                                p["confidence_threshold"])
            except ImportError as e:
                self._missing("publish_vision_msgs", "vision_msgs", e)

    def _on_rep155_bad_input(self, kind: str, error: Exception) -> None:
        if self.stats.on_bad_input(kind) == 1:
            self.log.warning(f"bad REP-155 face ({kind}): {error} -- skipped; counted in diagnostics as "
                             f"bad_input.{kind}, further ones are not logged")

    def _on_rep155_backend_error(self, error: Exception) -> None:
        if self.stats.on_backend_error(error):
            self.log.error(f"REP-155 input: inference failed: {type(error).__name__}: {error}")
        if self.params["exit_on_backend_error"]:
            self.log.fatal("exit_on_backend_error is true: shutting down")
            self.request_exit(EXIT_BACKEND_ERROR)

    def _publish_hri_and_vision(self, header: Any, faces: list[PerceivedFace], bgr: np.ndarray) -> None:
        if self._hri_out is None and self._vision_out is None:
            return
        alive = {t.track_id for t in self.perception.tracker.tracks}
        ended = self.face_ids.forget([t for t in self.face_ids.active() if t not in alive])
        if self._hri_out is not None:
            self._hri_out.end(ended)
            self._hri_out.publish(header, faces, bgr, [self.face_ids.id_for(t) for t in sorted(alive)])
        if self._vision_out is not None:
            self._vision_out.publish(header, faces)

    def _adopt_model_threshold(self, pipeline: PerceptionPipeline | FaceClassifier) -> None:
        """The model's sidecar may carry its own confidence_threshold (chosen from its risk-coverage
        table); it replaces fer.yaml's default unless the parameter was given at start-up."""
        threshold = pipeline.model_confidence_threshold
        if threshold is None or "confidence_threshold" in self.params.explicit:
            return
        if threshold != self.params["confidence_threshold"]:
            self.node.set_parameters([Parameter("confidence_threshold", value=float(threshold))])
            self.log.info(f"confidence_threshold {threshold:g} from the model's sidecar")

    def activate(self) -> None:
        if not self.configured:
            raise RuntimeError("activate() before configure()")
        if self.active:
            return
        self._worker.start()
        self.active = True
        self.stats.reset_input_clock()
        if self.params["enabled"]:
            self._subscribe()
        self.log.info(
            (f"active: REP-155 faces of the detector on {self.input_topic} (input_mode rep155, "
             f"rep155_max_wait {self.params['rep155_max_wait']:g} s)" if self._hri_in is not None else
             f"active: {self.params['transport']} images from {self.input_topic} "
             f"({self.params['qos_reliability']}, depth {self.params['qos_depth']})")
            + ("" if self.params["enabled"] else "; enabled=false, not subscribed until enabled")
        )

    def deactivate(self) -> None:
        if not self.active:
            return
        self._unsubscribe()
        self.active = False
        self._worker.stop()
        if self.node.context.ok():  # not while shutting down (rosout is gone by then)
            self.log.info("inactive: image subscription dropped")

    def cleanup(self) -> None:
        self.deactivate()
        for extra in (self._hri_out, self._vision_out):
            if extra is not None:
                extra.close()
        self._hri_out = self._vision_out = self._hri_in = None
        for pub in (self._faces_pub, self._labels_pub, self._annotated_pub):
            if pub is not None:
                self.node.destroy_publisher(pub)
        self._faces_pub = self._labels_pub = self._annotated_pub = None
        if self.pipeline is not None:
            self.pipeline.close()
        self.pipeline = self.perception = None
        self.configured = False

    def state(self) -> str:
        if not self.configured:
            return "unconfigured"
        if not self.active:
            return "inactive"
        return "active" if self.params["enabled"] else "disabled"

    # --- input ---------------------------------------------------------------------------------
    def _subscribe(self) -> None:
        if self._hri_in is not None:
            self._hri_in.start()
            self.stats.reset_input_clock()
            return
        if self._sub is not None:
            return
        qos = QoSProfile(depth=self.params["qos_depth"], reliability=_reliability(self.params["qos_reliability"]),
                         durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        msg_type = CompressedImage if self.params["transport"] == "compressed" else Image
        self._sub = self.node.create_subscription(
            msg_type, self.input_topic, self._on_image, qos, callback_group=self._image_group
        )
        self.stats.reset_input_clock()

    def _unsubscribe(self) -> None:
        if self._hri_in is not None:
            self._hri_in.stop()
        if self._sub is not None:
            self.node.destroy_subscription(self._sub)
            self._sub = None
        self._worker.clear()
        if self.perception is not None:  # tracks start afresh when perception is switched on again
            self.perception.request_reset()

    def _on_image(self, msg: Any) -> None:
        now = time.monotonic()
        self.stats.on_received(now, self._worker.offer(msg, now))

    # --- worker --------------------------------------------------------------------------------
    def _on_worker_error(self, error: Exception) -> bool:
        """A bug, not bad input: reported once per type; the worker goes on unless shutting down."""
        if not self.node.context.ok():
            return False
        key = type(error).__name__
        if key not in self._logged_internal:
            self._logged_internal.add(key)
            self.log.error(f"internal error while processing a frame ({key}: {error}); continuing")
        return True

    def _convert(self, msg: Any) -> np.ndarray:
        if self.params["transport"] == "compressed":
            return compressed_to_bgr(msg)
        return image_to_bgr(msg)

    def _process(self, msg: Any, received: float) -> None:
        try:
            bgr = self._convert(msg)
        except ImageConversionError as e:
            kind = e.kind
            self.stats.on_bad_input(kind)
            if kind not in self._logged_bad_kinds:
                self._logged_bad_kinds.add(kind)
                self.log.warning(
                    f"bad input image ({kind}): {e} -- skipped; counted in diagnostics as "
                    f"bad_input.{kind}, further '{kind}' images are not logged"
                )
            return

        perception = self.perception
        try:
            faces = perception.process(bgr)
        except Exception as e:
            if self.stats.on_backend_error(e):
                self.log.error(f"inference backend failed: {type(e).__name__}: {e}")
            if self.params["exit_on_backend_error"]:
                self.log.fatal("exit_on_backend_error is true: shutting down")
                self.request_exit(EXIT_BACKEND_ERROR)
            return

        out = fer_messages().FaceEmotionArray()
        out.header = msg.header
        out.labels = list(perception.labels)
        out.faces = [face_message(f) for f in faces]
        self._faces_pub.publish(out)
        self._publish_hri_and_vision(msg.header, faces, bgr)
        done = time.monotonic()
        age = None
        stamp = msg.header.stamp
        if stamp.sec or stamp.nanosec:
            age = (self.node.get_clock().now().nanoseconds - (stamp.sec * 10**9 + stamp.nanosec)) * 1e-9
            if not 0.0 <= age < 60.0:  # stamps from another clock (sim time, recorded data)
                age = None
        if self.stats.on_processed(done, done - received, len(faces), age, perception.stage_seconds()):
            self.log.info("inference backend recovered")

        if (self.params["publish_annotated"] and self._annotated_pub is not None
                and self._annotated_pub.get_subscription_count() > 0):
            annotations = [FaceAnnotation(f.box, f.label, f.confidence, f.track_id, f.probabilities)
                           for f in faces]
            drawn = draw_faces(bgr, annotations, labels=perception.labels)
            self._annotated_pub.publish(numpy_to_image(drawn, "bgr8", header=msg.header))

    def request_exit(self, code: int) -> None:
        self.exit_code = code
        self._worker.stop()
        if self.on_exit_request is not None:
            self.on_exit_request(code)

    # --- diagnostics ---------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        info = {"input_topic": self.input_topic, **self.info}
        snap = self.stats.snapshot(state=self.state(), stale_timeout=self.params["stale_timeout"], info=info)
        arr = DiagnosticArray()
        arr.header.stamp = self.node.get_clock().now().to_msg()
        arr.status = [to_diagnostic_status(snap, f"{self.node.get_name()}: facial expression recognition",
                                           self.info.get("backend", ""))]
        self._diag_pub.publish(arr)

    def destroy(self) -> None:
        self.deactivate()
        self._worker.stop()


class FerNode(Node):
    """fer_node as a plain node: configures (loads the model) and activates on construction.

    Raises FerError (ModelLoadError, BackendUnavailableError, ...) or ParameterValueError when it
    cannot start; the node is destroyed in that case.
    """

    def __init__(self, node_name: str = "fer_node", *, pipeline_factory: PipelineFactory | None = None,
                 **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.shell: FerRosShell | None = None
        try:
            self.shell = FerRosShell(self, pipeline_factory)
            self.shell.configure()
            self.shell.activate()
        except BaseException:
            self.destroy_node()
            raise

    @property
    def exit_code(self) -> int | None:
        return self.shell.exit_code if self.shell is not None else None

    def destroy_node(self) -> None:
        if self.shell is not None:
            self.shell.destroy()
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
        self.shell = FerRosShell(self, pipeline_factory)

    @property
    def exit_code(self) -> int | None:
        return self.shell.exit_code

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.shell.configure()
        except FerError as e:
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shell.activate()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shell.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shell.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shell.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shell.deactivate()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self.shell.destroy()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    try:
        own = non_ros_args(argv)
    except RosArgsError as e:
        return startup_error("fer_node", str(e))
    parser = argparse.ArgumentParser(
        prog="fer_node",
        description="Facial expression recognition node. ROS arguments follow --ros-args, e.g. "
                    "fer_node --ros-args -r image:=/camera/image_raw -p backend:=onnxruntime",
    )
    parser.add_argument("--lifecycle", action="store_true",
                        help="run as a managed (lifecycle) node that waits for configure/activate")
    args = parser.parse_args(own)

    try:
        fer_messages()
    except ImportError as e:
        return startup_error("fer_node", f"message packages not importable ({e}); run scripts/bootstrap.sh")

    with ros_process(argv) as process:
        try:
            node = (FerLifecycleNode if args.lifecycle else FerNode)()
        except (FerError, ParameterValueError, FileNotFoundError) as e:
            hint = ""
            if isinstance(e, ModelLoadError) and "model_path:=" not in " ".join(argv):
                hint = " (choose a model with: --ros-args -p model_path:=/path/to/model.onnx)"
            return startup_error("fer_node", f"{e}{hint}")
        return process.spin(node, make_executor())
    return 0


if __name__ == "__main__":
    sys.exit(main())
