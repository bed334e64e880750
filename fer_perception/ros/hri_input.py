"""REP-155 input mode of fer_node (``input_mode: rep155``): a drop-in emotion recogniser for an
existing ROS4HRI stack.

The node does no detection of its own. It follows ``/humans/faces/tracked`` (hri_msgs/IdsList) of
another detector (hri_face_detect's contract) and, for every listed face, subscribes to
``/humans/faces/<id>/roi``, ``/landmarks`` and ``/cropped``. It does not use the detector's
``/aligned`` image (that follows the detector's template, not the FER2013 framing the model was
trained on): each face is re-aligned from roi + landmarks + cropped with this project's
preprocessing (fer_perception.hri.realign_rep155). The faces of one frame arrive on separate
topics; fer_perception.hri.StampGrouper groups them by header stamp, with a bounded wait
(``rep155_max_wait``), and each frame's faces go to the model in ONE inference call. Per face it
publishes ``/humans/faces/<id>/expression`` (hri_msgs/Expression, the source header, latched),
smoothed per face id like the node's own tracks; a face's subscriptions and publisher are removed
when it leaves ``tracked``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from fer_perception.errors import ImageConversionError
from fer_perception.hri import (
    FrameGroup,
    StampGrouper,
    realign_face_topics,
    rep155_expression,
    stamp_ns,
)
from fer_perception.image_conversion import image_to_bgr
from fer_perception.labels import valence_arousal
from fer_perception.newest_frame import NewestFrameWorker
from fer_perception.pipeline import FaceClassifier
from fer_perception.ros.hri_output import FACES_NS, LATCHED, hri_messages
from fer_perception.smoothing import SmoothingConfig, TrackSmoother
from fer_perception.stats import PipelineStats

#: Subscriptions to the detector: reliable like hri_face_detect's publishers (a best-effort
#: publisher would not match; REP-155 does not fix a QoS); volatile also matches latched ones.
DETECTOR_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                          history=HistoryPolicy.KEEP_LAST)


def _header_ns(msg: Any) -> int:
    return stamp_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)


class HriInput:
    """Subscriptions, grouping, re-alignment, one batched inference per frame, Expression output."""

    def __init__(self, node: Node, classifier: FaceClassifier, smoothing: SmoothingConfig, max_wait: float,
                 stats: PipelineStats, *, on_bad_input: Callable[[str, Exception], None],
                 on_backend_error: Callable[[Exception], None]) -> None:
        self.msgs = hri_messages()
        self.node = node
        self.classifier = classifier
        self.labels = tuple(classifier.labels)
        self.smoother = TrackSmoother(smoothing)
        self.stats = stats
        self._on_bad_input = on_bad_input
        self._on_backend_error = on_backend_error
        self.grouper = StampGrouper(max_wait)
        self._lock = threading.Lock()
        self._group = MutuallyExclusiveCallbackGroup()
        self._faces: dict[str, list[Any]] = {}  # id -> its subscriptions
        self._expression_pubs: dict[str, Any] = {}
        self._tracked_sub = None
        self._timer = None
        # The newest complete frame only, like the camera path: a slow machine drops frames (counted
        # in diagnostics) instead of building a backlog.
        self._worker = NewestFrameWorker(lambda group, _received: self._classify(group), self._on_worker_error,
                                         name="fer_rep155_worker")
        self._smoother_lock = threading.Lock()
        self._pub_lock = threading.Lock()  # expression publishers: used by the worker, removed by the executor
        self.frames = 0  # frames handled (for tests and the benchmark)
        self.frames_with_faces = 0
        self.inference_calls = 0

    # --- start / stop ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._tracked_sub is not None:
            return
        self._worker.start()
        self._tracked_sub = self.node.create_subscription(
            self.msgs.IdsList, f"{FACES_NS}/tracked", self._on_tracked, DETECTOR_QOS, callback_group=self._group)
        period = max(self.grouper.max_wait / 4.0, 0.002)
        self._timer = self.node.create_timer(period, self._flush, callback_group=self._group)

    def stop(self) -> None:
        if self._tracked_sub is None:
            return
        self.node.destroy_subscription(self._tracked_sub)
        self.node.destroy_timer(self._timer)
        self._tracked_sub = self._timer = None
        for face_id in list(self._faces):
            self._drop_face(face_id)
        self._worker.stop()
        with self._lock:
            self.grouper = StampGrouper(self.grouper.max_wait, self.grouper.max_pending)
        with self._smoother_lock:
            self.smoother.reset()

    def set_smoothing(self, config: SmoothingConfig) -> None:
        with self._smoother_lock:  # the worker uses the smoother; parameters change on the executor
            self.smoother.reconfigure(config)

    def tracked_faces(self) -> list[str]:
        return sorted(self._faces)

    # --- subscriptions ---------------------------------------------------------------------------
    def _on_tracked(self, msg: Any) -> None:
        ids = [str(i) for i in msg.ids]
        now = time.monotonic()
        for face_id in list(ids):
            if face_id not in self._faces:
                try:
                    self._add_face(face_id)
                except Exception as e:  # e.g. an id that is no valid topic name token: skip that face
                    self._on_bad_input("rep155_face_id", ValueError(f"face id {face_id!r}: {e}"))
                    ids.remove(face_id)
        gone = [i for i in self._faces if i not in ids]
        for face_id in gone:
            self._drop_face(face_id)
        with self._lock:
            self.grouper.forget(gone)
            self.grouper.add_tracked(_header_ns(msg), ids, now)
        self._flush()

    def _add_face(self, face_id: str) -> None:
        ns, m = f"{FACES_NS}/{face_id}", self.msgs

        def part(name: str):
            return lambda msg: self._on_part(face_id, name, msg)

        self._faces[face_id] = [
            self.node.create_subscription(m.NormalizedRegionOfInterest2D, f"{ns}/roi", part("roi"), DETECTOR_QOS,
                                          callback_group=self._group),
            self.node.create_subscription(m.FacialLandmarks, f"{ns}/landmarks", part("landmarks"), DETECTOR_QOS,
                                          callback_group=self._group),
            self.node.create_subscription(Image, f"{ns}/cropped", part("cropped"), DETECTOR_QOS,
                                          callback_group=self._group),
        ]
        pub = self.node.create_publisher(m.Expression, f"{ns}/expression", LATCHED)
        with self._pub_lock:
            self._expression_pubs[face_id] = pub

    def _drop_face(self, face_id: str) -> None:
        for sub in self._faces.pop(face_id, []):
            self.node.destroy_subscription(sub)
        with self._pub_lock:
            pub = self._expression_pubs.pop(face_id, None)
            if pub is not None:
                self.node.destroy_publisher(pub)
        with self._smoother_lock:
            self.smoother.forget([face_id])

    def _on_part(self, face_id: str, name: str, msg: Any) -> None:
        with self._lock:
            self.grouper.add_part(_header_ns(msg), face_id, name, msg, time.monotonic())
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            groups = self.grouper.pop_ready(time.monotonic())
        for g in groups:
            self.stats.on_received(g.first_seen, self._worker.offer(g, g.first_seen))

    # --- the worker ------------------------------------------------------------------------------
    def _on_worker_error(self, error: Exception) -> bool:
        """A bug, not bad input: reported; the worker goes on unless shutting down."""
        if not self.node.context.ok():
            return False
        self._on_backend_error(error)
        return True

    def _realign(self, parts: dict[str, Any]) -> np.ndarray:
        r, landmarks = parts["roi"], parts.get("landmarks")
        points = None if landmarks is None else [(p.x, p.y, p.c) for p in landmarks.landmarks]
        return realign_face_topics(image_to_bgr(parts["cropped"]), (r.xmin, r.ymin, r.xmax, r.ymax), points,
                                   landmarks.width if landmarks is not None else 0,
                                   landmarks.height if landmarks is not None else 0)

    def _classify(self, group: FrameGroup) -> None:
        started = time.monotonic()
        ids, crops, headers = [], [], []
        for face_id, parts in group.ready_faces().items():
            try:
                crops.append(self._realign(parts))
            except (ImageConversionError, ValueError) as e:
                self._on_bad_input("rep155_face", e)
                continue
            ids.append(face_id)
            headers.append(parts["cropped"].header)
        t_aligned = time.monotonic()
        probs = self.classifier.classify(np.stack(crops)) if crops else np.empty((0, len(self.labels)), np.float32)
        self.inference_calls += int(bool(crops))
        self.frames_with_faces += int(bool(crops))
        t_inferred = time.monotonic()
        m = self.msgs
        for face_id, header, p in zip(ids, headers, probs):
            with self._smoother_lock:
                s = self.smoother.update(face_id, p)
            valence, arousal = valence_arousal(s.probabilities, self.labels)
            msg = m.Expression(header=header, expression=rep155_expression(s.label), valence=float(valence),
                               arousal=float(arousal), confidence=float(s.confidence))
            with self._pub_lock:
                pub = self._expression_pubs.get(face_id)
                if pub is not None:  # else it left tracked meanwhile
                    pub.publish(msg)
        done = time.monotonic()
        self.frames += 1
        age = (self.node.get_clock().now().nanoseconds - group.stamp) * 1e-9 if group.stamp else None
        if age is not None and not 0.0 <= age < 60.0:  # another clock (sim time, recorded data)
            age = None
        self.stats.on_processed(done, done - group.first_seen, len(ids), age,
                                {"align": t_aligned - started, "infer": t_inferred - t_aligned,
                                 "total": done - started})
