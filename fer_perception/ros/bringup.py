"""fer_bringup: the launch file's nodes for pip-only installs (no `launch`/`ros2` CLI needed).

    fer_bringup                                   # fer_camera (built-in image) + fer_node
    fer_bringup --video clip.mp4 --loop           # a video file
    fer_bringup --device 0                        # a V4L2 camera
    fer_bringup --topic /camera/image_raw         # an existing camera topic: no fer_camera
    fer_bringup --params-file my.yaml --lifecycle # managed fer_node, configured + activated here
    fer_bringup --video clip.mp4 --ros-args -p fer_node:max_faces:=2 --params-file my.yaml

Starts the same nodes as launch/fer.launch.py, with the same parameters (config/fer.yaml sections
``fer_node`` and ``fer_camera``; ``--params-file`` or ``--ros-args --params-file`` add to / override
them), in ONE process: component-style node objects on a MultiThreadedExecutor. fer_camera publishes
on ``--image-topic`` (default /camera/image_raw) and fer_node subscribes to it; global
``--ros-args -r`` remaps apply to every node (do not rename nodes with ``-r __node:=``: that would
rename all of them).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from fer_perception.errors import FerError
from fer_perception.frame_source import SourceError, parse_resize
from fer_perception.params import ParameterValueError
from fer_perception.ros.camera_source import add_source_arguments, make_camera_node, source_overrides
from fer_perception.ros.node import FerLifecycleNode, FerNode
from fer_perception.ros.process import (
    RosArgsError,
    check_params_file,
    non_ros_args,
    ros_process,
    spin_until_exit,
    startup_error,
)

DEFAULT_IMAGE_TOPIC = "/camera/image_raw"


def add_bringup_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument("--topic", metavar="TOPIC",
                        help="use this existing sensor_msgs/Image topic instead of starting fer_camera")
    parser.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC,
                        help=f"topic fer_camera publishes and fer_node reads (default {DEFAULT_IMAGE_TOPIC})")
    parser.add_argument("--params-file", action="append", default=[], metavar="YAML",
                        help="ROS 2 parameters file (sections fer_node / fer_camera); may be repeated")
    parser.add_argument("--model", help="expression model file (fer_node model_path)")
    parser.add_argument("--backend", help="auto, tensorrt, onnxruntime or tflite (fer_node backend)")
    parser.add_argument("--detector", help="blazeface or haar (fer_node detector)")
    parser.add_argument("--rate", type=float, help="fer_camera frames per second")
    parser.add_argument("--resize", metavar="WxH", help="fer_camera: resize frames, e.g. 640x480")
    parser.add_argument("--loop", action="store_true", default=None, help="fer_camera: loop video files")
    parser.add_argument("--compressed", action="store_true", default=None,
                        help="send JPEG (<topic>/compressed) from fer_camera to fer_node")
    parser.add_argument("--lifecycle", action="store_true",
                        help="run fer_node as a lifecycle node (configured and activated here unless --no-autostart)")
    parser.add_argument("--no-autostart", action="store_true",
                        help="with --lifecycle: leave fer_node unconfigured for an external lifecycle manager")


# Several nodes share one process here, and their worker threads make many short OpenCV/ONNX calls
# that release and re-take the GIL. With Python's default 5 ms switch interval each re-take can wait
# behind the executor's Python threads (a GIL convoy): measured with fer_demo on the hamilton clip,
# drawing ~/annotated took 37 ms per frame at the median and the camera fell to 7 fps; with 0.5 ms,
# 3.4 ms and 26 fps.
SHARED_PROCESS_SWITCH_INTERVAL_S = 0.0005


def tune_for_shared_process() -> None:
    """Shorten the GIL switch interval for processes that run several nodes (see above)."""
    sys.setswitchinterval(SHARED_PROCESS_SWITCH_INTERVAL_S)


def parse_bringup_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The arguments after the ROS ones, with every parameters file (--ros-args --params-file and our
    own --params-file) checked first; RosArgsError names the first unusable one."""
    args = parser.parse_args(non_ros_args(argv))
    for path in args.params_file:
        check_params_file(path)
    return args


def ros_argv(argv: list[str], params_files: list[str]) -> list[str]:
    """argv for rclpy.init: the user's --ros-args plus our --params-file flags."""
    out = list(argv)
    for path in params_files:
        out += ["--ros-args", "--params-file", path]
    return out


class Bringup:
    """fer_camera (unless an existing topic is used) and fer_node, created in one rclpy context."""

    def __init__(self, args: argparse.Namespace, *, context: Any = None, camera_frame_hooks=()) -> None:
        """``camera_frame_hooks``: called with (frame, header) for every frame fer_camera publishes."""
        self.camera = None
        self.fer = None
        topic = args.topic or args.image_topic
        self.image_topic = topic
        remap = ["--ros-args", "-r", f"image:={topic}"]
        kw: dict[str, Any] = {"context": context} if context is not None else {}
        try:
            fer: dict[str, Any] = {}
            for flag, name in (("model", "model_path"), ("backend", "backend"), ("detector", "detector")):
                value = getattr(args, flag, None)
                if value is not None:
                    fer[name] = str(value)
            if getattr(args, "compressed", None):
                fer["transport"] = "compressed"
            fer_kw = dict(cli_args=remap, parameter_overrides=[Parameter(k, value=v) for k, v in fer.items()],
                          **kw)
            if args.lifecycle:
                self.fer = FerLifecycleNode(**fer_kw)
                if not args.no_autostart:
                    if self.fer.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                        raise FerError("fer_node could not be configured (see the log line above)")
                    if self.fer.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                        raise FerError("fer_node could not be activated")
            else:
                self.fer = FerNode(**fer_kw)
            if not args.topic:
                cam = source_overrides(args)
                for flag, name in (("rate", "rate"), ("resize", "resize"), ("loop", "loop"),
                                   ("compressed", "publish_compressed")):
                    value = getattr(args, flag, None)
                    if value is not None:
                        cam[name] = value
                if args.resize is not None:
                    parse_resize(args.resize)
                self.camera = make_camera_node(
                    cli_args=remap, parameter_overrides=[Parameter(k, value=v) for k, v in cam.items()],
                    frame_hooks=list(camera_frame_hooks), **kw
                )
        except BaseException:
            self.destroy()
            raise

    @property
    def nodes(self) -> list:
        return [n for n in (self.camera, self.fer) if n is not None]

    @property
    def teardown_order(self) -> list:
        """fer_node first: it stops taking frames before their source goes."""
        return [n for n in (self.fer, self.camera) if n is not None]

    def destroy(self) -> None:
        for node in self.teardown_order:
            try:
                node.destroy_node()
            except Exception:
                pass
        self.fer = self.camera = None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fer_bringup", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bringup_arguments(parser)
    try:
        args = parse_bringup_args(parser, argv)
    except RosArgsError as e:
        return startup_error("fer_bringup", str(e))

    tune_for_shared_process()
    with ros_process(ros_argv(argv, args.params_file)) as process:
        try:
            bringup = Bringup(args)
        except (FerError, ParameterValueError, SourceError, FileNotFoundError, ValueError, ImportError) as e:
            return startup_error("fer_bringup", str(e))
        executor = MultiThreadedExecutor(num_threads=4)
        for node in bringup.nodes:
            executor.add_node(node)
        for node in bringup.teardown_order:
            process.own(node)
        process.own(executor=executor)
        return spin_until_exit(executor, [bringup.fer])
    return 0  # Ctrl-C or an external shutdown ended the block

if __name__ == "__main__":
    sys.exit(main())
