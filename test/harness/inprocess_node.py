"""FerNode in the test process, next to a helper node, on one MultiThreadedExecutor (over DDS on the
test's isolated domain). Used by the REP-155 and vision_msgs tests.

    node = InProcessFer(ros_env, FakeFacePipeline(), {"publish_rep155": True})
    stamp = node.publish(fake_frame(2))        # a frame whose pixel (0, 0) says how many faces it has
    msgs = node.collect(Expression, "/humans/faces/<id>/expression")

:class:`FakeFacePipeline` returns the faces a frame encodes (channel 0 of pixel (0, 0) = number of
faces, channel 1 = horizontal shift), so a test controls exactly which tracks exist.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

import rosharness as rh
from fer_perception.labels import EMOTION_LABELS
from fer_perception.pipeline import FaceResult, PipelineInfo

FEAR = np.full(7, 0.1 / 6, np.float32)
FEAR[EMOTION_LABELS.index("fear")] = 0.9


def fake_box(k: int, shift: int = 0) -> tuple[int, int, int, int]:
    return (20 + 100 * k + shift, 30, 60 + 5 * k, 70 + 5 * k)


class FakeFacePipeline:
    """PerceptionPipeline + FaceClassifier whose faces are written in the frame (module docstring)."""

    labels = EMOTION_LABELS
    model_confidence_threshold = None

    def __init__(self, probabilities: np.ndarray = FEAR) -> None:
        self.probabilities = probabilities
        self.classify_calls: list[int] = []

    def process(self, bgr):
        n, shift = int(bgr[0, 0, 0]), int(bgr[0, 0, 1])
        return [FaceResult(box=fake_box(k, shift), detection_score=0.8, keypoints=None,
                           crop=np.zeros((48, 48), np.uint8), probabilities=self.probabilities.copy(),
                           labels=self.labels) for k in range(n)]

    def classify(self, crops):
        self.classify_calls.append(len(crops))
        return np.repeat(self.probabilities[None], len(crops), axis=0)

    def info(self) -> PipelineInfo:
        return PipelineInfo(backend="fake", model="fake.onnx", detector="fake-detector")

    def stage_seconds(self) -> dict[str, float]:
        return {}

    def set_face_limits(self, min_face_size: int, max_faces: int) -> None:
        pass

    def close(self) -> None:
        pass


def fake_frame(n: int, shift: int = 0, width: int = 640, height: int = 480) -> np.ndarray:
    rng = np.random.default_rng(n * 1000 + shift)
    img = rng.integers(30, 220, (height, width, 3), dtype=np.uint8)
    img[0, 0] = (n, shift, 0)
    return img


class InProcessFer:
    """FerNode (or FerLifecycleNode-free plain node) + helper node on one executor. ``pipeline``
    None: the node builds its own from its parameters (fer_perception.perception.pipeline_from_params)."""

    def __init__(self, env: dict[str, str], pipeline: Any, params: dict[str, Any],
                 image_topic: str = "/inproc/image") -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image

        from fer_perception.ros.node import FerNode

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
        self.pipeline = pipeline
        params = {"qos_reliability": "reliable", "qos_depth": 5, "diagnostics_period": 0.2,
                  "publish_annotated": False, "min_face_size": 0, **params}
        try:
            self.fer = FerNode(pipeline_factory=None if pipeline is None else (lambda options: pipeline),
                               context=self.ctx,
                               cli_args=["--ros-args", "-r", f"image:={image_topic}"],
                               parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        except BaseException:  # a start-up error under test: leave no context behind
            rclpy.try_shutdown(context=self.ctx)
            raise
        self.helper = rclpy.create_node("helper", context=self.ctx)
        self.lock = threading.Lock()
        self.pub = self.helper.create_publisher(Image, image_topic, 10)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.ctx)
        self.executor.add_node(self.fer)
        self.executor.add_node(self.helper)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        self.seq = 0

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            pass

    @staticmethod
    def wait(pred: Callable[[], Any], timeout: float, what: str) -> Any:
        return rh.wait_until(pred, timeout, what, interval=0.01)

    def collect(self, msg_type: Any, topic: str, qos: Any = None) -> list:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        qos = qos or QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        out: list = []

        def cb(msg):
            with self.lock:
                out.append(msg)

        sub = self.helper.create_subscription(msg_type, topic, cb, qos)
        out_sub = getattr(self, "_subs", [])
        out_sub.append(sub)
        self._subs = out_sub
        return out

    def latched(self, msg_type: Any, topic: str) -> list:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        return self.collect(msg_type, topic, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                                        durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                                        history=HistoryPolicy.KEEP_LAST))

    def snapshot(self, items: list) -> list:
        with self.lock:
            return list(items)

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        self.wait(lambda: self.pub.get_subscription_count() > 0, timeout, "fer_node to subscribe to the images")

    def publish(self, img: np.ndarray, frame_id: str = "cam") -> tuple[int, int]:
        from fer_perception.ros.image_msgs import numpy_to_image

        self.seq += 1
        msg = numpy_to_image(img, "bgr8")
        msg.header.stamp.sec, msg.header.stamp.nanosec = 2000 + self.seq, 11 * self.seq
        msg.header.frame_id = frame_id
        self.pub.publish(msg)
        return msg.header.stamp.sec, msg.header.stamp.nanosec

    def publish_until(self, img: np.ndarray, arrived: Callable[[tuple[int, int]], Any], timeout: float,
                      what: str, every: float = 0.5) -> Any:
        """Publish ``img`` (a new stamp each time) every ``every`` s until ``arrived(stamp)`` holds.
        For checks that only need *a* frame through: right after a lifecycle transition the image
        publisher may still count the old subscription, or the output publisher may not yet know the
        test's subscriber, and one volatile frame is then lost (seen on a loaded 2-core machine)."""
        deadline = time.monotonic() + rh.patience(timeout)
        while True:
            stamp = self.publish(img)
            until = min(time.monotonic() + every, deadline)
            while time.monotonic() < until:
                value = arrived(stamp)
                if value:
                    return value
                time.sleep(0.01)
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {rh.patience(timeout)} s waiting for {what}")

    def topic_publishers(self, topic: str) -> int:
        return self.helper.count_publishers(topic)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2)
        self.fer.destroy_node()
        self.helper.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        self.thread.join(timeout=5)


def with_stamp(items: list, stamp: tuple[int, int]) -> list:
    return [m for m in items if (m.header.stamp.sec, m.header.stamp.nanosec) == tuple(stamp)]
