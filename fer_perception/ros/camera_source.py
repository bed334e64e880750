"""fer_camera: publish a video file, a camera (V4L2) or a still image as sensor_msgs/Image (bgr8).

    fer_camera                                   # built-in test image (scikit-image astronaut), looped
    fer_camera --video clip.mp4 --loop           # a video file, played frame by frame at --rate
    fer_camera --device 0                        # cv2.VideoCapture index, or --device /dev/video2
    fer_camera --image face.jpg --rate 15 --resize 640x480
    fer_camera --ros-args -r image:=/camera/image_raw -p frame_id:=head_camera

Publishes ``image`` (remap it) with header.stamp = now() at publication and frame_id
``<camera_name>_optical_frame`` (REP-103's optical frame: z forward, x right, y down) unless
``frame_id`` names another; beside it ``camera_info`` (sensor_msgs/CameraInfo, same header, in the
image topic's namespace: ``/camera/image_raw`` -> ``/camera/camera_info``) from the
``camera_info_url`` calibration file, else uncalibrated (image size and frame; K, R, P zero, D empty:
sensor_msgs' "uncalibrated"); with ``publish_compressed`` also ``<image>/compressed`` (JPEG). Flags
override the parameters of config/fer.yaml (section ``fer_camera``).

A device or file that stops delivering frames is released and reopened every ``reopen_interval``
seconds until it works again (both events are logged once), so a camera can be unplugged and
plugged back in. A video file that ends is played again with ``loop``; otherwise fer_camera exits
(status 0) after its last frame, as it does after ``max_frames``. ``wait_for_subscribers`` holds the
first frame until that many subscribers have matched (DDS does not replay frames to late joiners).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any, Callable

import numpy as np

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from fer_perception.camera_calibration import CalibrationError, CameraCalibration, load_calibration, uncalibrated
from fer_perception.frame_source import FrameSource, SourceError, parse_resize
from fer_perception.params import ParameterValueError
from fer_perception.ros.image_msgs import bgr_to_compressed, numpy_to_image
from fer_perception.ros.params import ParameterSet
from fer_perception.ros.process import RosArgsError, non_ros_args, ros_process, startup_error

NODE_KEY = "fer_camera"


class FerCamera(Node):
    """Publishes frames of one FrameSource at ``rate`` Hz from its own thread."""

    def __init__(self, node_name: str = "fer_camera", *,
                 frame_hooks: list[Callable[[np.ndarray, Header], None]] | None = None, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        def check_resize(value: str) -> str | None:
            try:
                parse_resize(value)
            except ValueError as e:
                return str(e)
            return None

        self.params = ParameterSet(self, NODE_KEY, extra={"resize": check_resize},
                                   on_change=self._on_change)
        p = self.params
        self.exit_code: int | None = None
        self.frames_published = 0
        #: called with (frame, header) after each frame is published: in-process consumers (fer_demo's
        #: video) get the frame itself instead of a DDS copy; they must not modify it
        #: (given here, so that they see the first frame too)
        self.frame_hooks: list[Callable[[np.ndarray, Header], None]] = list(frame_hooks or [])
        self.frame_id = p["frame_id"] or f"{p['camera_name']}_optical_frame"
        self.calibration: CameraCalibration | None = None
        self._info_cache: tuple[tuple[int, int], CameraInfo] | None = None
        try:
            if p["camera_info_url"]:
                self.calibration = load_calibration(p["camera_info_url"], _package_share)
                if self.calibration.camera_name and self.calibration.camera_name != p["camera_name"]:
                    self.get_logger().warning(
                        f"calibration {self.calibration.source} is for camera "
                        f"'{self.calibration.camera_name}', this is '{p['camera_name']}'; using it anyway")
            self.source = FrameSource(p["source"], loop=p["loop"], resize=parse_resize(p["resize"]),
                                      reopen_interval=p["reopen_interval"])
        except BaseException:
            self.destroy_node()
            raise
        reliability = (ReliabilityPolicy.RELIABLE if p["qos_reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        qos = QoSProfile(depth=1, reliability=reliability, durability=DurabilityPolicy.VOLATILE,
                         history=HistoryPolicy.KEEP_LAST)
        topic = self.resolve_topic_name("image")
        self.topic = topic
        self._pub = self.create_publisher(Image, topic, qos)
        self._cpub = (self.create_publisher(CompressedImage, topic + "/compressed", qos)
                      if p["publish_compressed"] else None)
        # image_transport's convention: camera_info beside the image, in the image topic's namespace.
        self.info_topic = topic.rsplit("/", 1)[0] + "/camera_info"
        self._info_pub = self.create_publisher(CameraInfo, self.info_topic, qos)
        self._period = 1.0 / p["rate"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fer_camera", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"publishing {self.source.describe()} on {topic} at {p['rate']:g} Hz"
            + (f" (+ {topic}/compressed)" if self._cpub else "")
            + f", {self.info_topic} "
            + (f"from {self.calibration.source}" if self.calibration else "uncalibrated")
            + f", frame {self.frame_id}"
        )

    def _on_change(self, changed: dict) -> None:
        if "rate" in changed:
            self._period = 1.0 / changed["rate"]
        if "reopen_interval" in changed:
            self.source.reopen_interval = changed["reopen_interval"]

    def _run(self) -> None:
        log = self.get_logger()
        p = self.params
        if not self._wait_for_subscribers(p["wait_for_subscribers"]):
            return
        next_t = time.monotonic()
        while not self._stop.is_set():
            frame, event = self.source.read()
            if event == "eof":
                log.info(f"end of {self.source.describe()} after {self.frames_published} frames")
                self._finish(0)
                return
            if event == "missing":
                log.warning(f"{self.source.describe()} is not available; "
                            f"trying to open it every {self.source.reopen_interval:g} s")
            elif event == "lost":
                log.warning(f"{self.source.describe()} stopped delivering frames; "
                            f"trying to reopen it every {self.source.reopen_interval:g} s")
            elif event == "restored":
                log.info(f"{self.source.describe()} delivers frames again")
            if frame is not None:
                header = self._header()
                try:
                    self._pub.publish(numpy_to_image(frame, "bgr8", header=header))
                    self._info_pub.publish(self.camera_info(frame.shape[1], frame.shape[0], header))
                    if self._cpub is not None:
                        self._cpub.publish(bgr_to_compressed(frame, "jpeg", header=header,
                                                             quality=p["jpeg_quality"]))
                except Exception:
                    if not self.context.ok():
                        return
                    raise
                self.frames_published += 1
                for hook in self.frame_hooks:
                    hook(frame, header)
                if p["max_frames"] and self.frames_published >= p["max_frames"]:
                    log.info(f"published max_frames={p['max_frames']} frames")
                    self._finish(0)
                    return
            next_t += self._period
            delay = next_t - time.monotonic()
            if delay < -self._period:  # fell behind (slow source): do not burst to catch up
                next_t = time.monotonic()
                delay = 0.0
            if frame is None and delay <= 0:
                delay = min(0.05, self.source.reopen_interval)
            if delay > 0:
                self._stop.wait(delay)

    def _wait_for_subscribers(self, wanted: int) -> bool:
        """Hold the first frame until ``wanted`` subscribers have matched the image publisher, so
        that they see the clip from its first frame. False when the node is stopped meanwhile."""
        if wanted <= 0:
            return True
        self.get_logger().info(f"waiting for {wanted} subscriber(s) on {self.topic}")
        while self._pub.get_subscription_count() < wanted:
            if self._stop.wait(0.05):
                return False
        self.get_logger().info(f"{self._pub.get_subscription_count()} subscriber(s) matched; publishing")
        return True

    def _header(self):
        h = Header()
        h.stamp = self.get_clock().now().to_msg()
        h.frame_id = self.frame_id
        return h

    def camera_info(self, width: int, height: int, header: Header) -> CameraInfo:
        """CameraInfo of a ``width`` x ``height`` frame: the calibration scaled to that size (a
        ``resize`` of the source), or uncalibrated; built once per size, stamped per frame."""
        if self._info_cache is None or self._info_cache[0] != (width, height):
            if self.calibration is not None:
                calib = self.calibration.for_size(width, height)
                if (width, height) != (self.calibration.width, self.calibration.height):
                    self.get_logger().warning(
                        f"calibration {self.calibration.source} is for {self.calibration.width}x"
                        f"{self.calibration.height} images, these are {width}x{height}: intrinsics scaled")
            else:
                calib = uncalibrated(width, height)
            self._info_cache = ((width, height), camera_info_message(calib))
        msg = self._info_cache[1]
        msg.header = header
        return msg

    def _finish(self, code: int) -> None:
        self.exit_code = code
        self._stop.set()

    def destroy_node(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5.0)
        source = getattr(self, "source", None)
        if source is not None:
            source.close()
        super().destroy_node()


def _package_share(package: str) -> str:
    from ament_index_python.packages import get_package_share_directory

    return get_package_share_directory(package)


def camera_info_message(calib: CameraCalibration) -> CameraInfo:
    msg = CameraInfo()
    msg.width, msg.height = calib.width, calib.height
    msg.distortion_model = calib.distortion_model
    msg.d = list(calib.d)
    msg.k = list(calib.k)
    msg.r = list(calib.r)
    msg.p = list(calib.p)
    return msg


def make_camera_node(node_name: str = "fer_camera", **node_kwargs: Any) -> FerCamera:
    """A FerCamera node (component style: pass context=, cli_args=, parameter_overrides=)."""
    return FerCamera(node_name, **node_kwargs)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--video", metavar="PATH", help="video file")
    src.add_argument("--device", metavar="N|/dev/videoN", help="camera: cv2.VideoCapture index or V4L2 path")
    src.add_argument("--image", metavar="PATH", help="still image, published repeatedly")


def source_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Parameter values given by the source flags (only those given)."""
    out: dict[str, Any] = {}
    for flag in ("video", "device", "image"):
        value = getattr(args, flag, None)
        if value is not None:
            out["source"] = str(value)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fer_camera", description=__doc__.split("\n\n")[0])
    add_source_arguments(parser)
    parser.add_argument("--rate", type=float, help="frames per second")
    parser.add_argument("--resize", metavar="WxH", help="resize frames, e.g. 640x480")
    parser.add_argument("--loop", action="store_true", default=None, help="loop video files")
    parser.add_argument("--frame-id", help="header.frame_id")
    parser.add_argument("--max-frames", type=int, help="stop after N frames")
    parser.add_argument("--wait-for-subscribers", type=int, metavar="N",
                        help="hold the first frame until N subscribers have matched the image topic")
    parser.add_argument("--compressed", action="store_true", default=None,
                        help="also publish <image>/compressed (JPEG)")
    try:
        own = non_ros_args(argv)
    except RosArgsError as e:
        return startup_error("fer_camera", str(e))
    args = parser.parse_args(own)
    overrides = source_overrides(args)
    for flag, name in (("rate", "rate"), ("resize", "resize"), ("loop", "loop"), ("frame_id", "frame_id"),
                       ("max_frames", "max_frames"), ("compressed", "publish_compressed"),
                       ("wait_for_subscribers", "wait_for_subscribers")):
        value = getattr(args, flag)
        if value is not None:
            overrides[name] = value
    if args.resize is not None:
        try:
            parse_resize(args.resize)
        except ValueError as e:
            return startup_error("fer_camera", str(e))

    with ros_process(argv) as process:
        try:
            node = make_camera_node(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        except (SourceError, ParameterValueError, CalibrationError, FileNotFoundError) as e:
            return startup_error("fer_camera", str(e))
        return process.spin(node, SingleThreadedExecutor())
    return 0


if __name__ == "__main__":
    sys.exit(main())
