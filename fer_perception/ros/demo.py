"""fer_demo: camera source + fer_node + console listener in one process, and an annotated video.

    fer_demo                                  # built-in face (scikit-image astronaut), 10 s
    fer_demo --video clip.mp4                 # a video file, until it ends
    fer_demo --device 0 --duration 30         # a V4L2 camera
    fer_demo --topic /camera/image_raw        # an existing ROS camera topic (no fer_camera)
    fer_demo --model my_model/model.onnx --backend onnxruntime --output out/demo.mp4

Prints one line per face when a track appears or changes its label, and a line with every face
at most every --print-every seconds; writes --output (mp4v): every source frame once, annotated with
the newest result available for it (fer_perception.annotated_video), drawn and encoded on a thread
of its own, so the node keeps its frame rate; prints a summary with the node's own diagnostics at
the end. All nodes run on one MultiThreadedExecutor, as fer_bringup
starts them (same parameters: config/fer.yaml, --params-file, --ros-args).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from fer_perception.annotate import FaceAnnotation
from fer_perception.annotated_video import AnnotatedVideo
from fer_perception.errors import FerError, ImageConversionError
from fer_perception.image_conversion import image_to_bgr
from fer_perception.frame_source import SourceError
from fer_perception.params import ParameterValueError
from fer_perception.ros.bringup import (
    Bringup,
    add_bringup_arguments,
    parse_bringup_args,
    ros_argv,
    tune_for_shared_process,
)
from fer_perception.ros.diagnostics import status_values
from fer_perception.ros.listener import make_listener
from fer_perception.ros.process import RosArgsError, ros_process, spin_once_unless_shut_down, startup_error

DEFAULT_OUTPUT = "out/fer_demo.mp4"
DEFAULT_DURATION = 10.0


class ConsolePrinter:
    """Turns FaceEmotionArray messages into a readable, throttled console log."""

    def __init__(self, print_every: float = 1.0, out=None) -> None:
        self.print_every = print_every
        self.out = out or sys.stdout
        self.t0 = time.monotonic()
        self._last_print = -1e9
        self._labels: dict[int, str] = {}
        self.frames = 0
        self.faces = 0
        self.track_labels: dict[int, Counter] = defaultdict(Counter)
        self.lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        now = time.monotonic()
        with self.lock:
            self.frames += 1
            self.faces += len(msg.faces)
            events = []
            for f in msg.faces:
                tid = int(f.track_id)
                self.track_labels[tid][f.label] += 1
                old = self._labels.get(tid)
                if old is None:
                    events.append(f"new face #{tid}: {f.label} {f.confidence:.2f}")
                elif old != f.label:
                    events.append(f"#{tid}: {old} -> {f.label} {f.confidence:.2f}")
                self._labels[tid] = f.label
            t = now - self.t0
            for e in events:
                print(f"[{t:6.1f} s] {e}", file=self.out, flush=True)
            if not events and now - self._last_print < self.print_every:
                return
            self._last_print = now
            faces = ", ".join(
                f"#{f.track_id} {f.label} {f.confidence:.2f} @({f.roi.x_offset},{f.roi.y_offset} "
                f"{f.roi.width}x{f.roi.height})" for f in msg.faces
            ) or "no face"
            print(f"[{t:6.1f} s] {len(msg.faces)} face{'s' if len(msg.faces) != 1 else ''}: {faces}",
                  file=self.out, flush=True)


class Mp4Writer:
    """Frames to an mp4v file at the source's frame rate (opened at the first frame; odd sizes are
    cropped to even ones, a changed size is resized to the first)."""

    def __init__(self, path: Path, fps: Callable[[], float]) -> None:
        self.path = Path(path)
        self.fps = fps  # asked at the first frame: the source's rate is known by then
        self._writer = None
        self._size: tuple[int, int] | None = None

    def __call__(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size = (bgr.shape[1] - bgr.shape[1] % 2, bgr.shape[0] - bgr.shape[0] % 2)  # mp4v: even
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps(), self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise OSError(f"cannot write {self.path} (OpenCV VideoWriter mp4v failed)")
        if (bgr.shape[1], bgr.shape[0]) != self._size:
            w, h = self._size
            if bgr.shape[1] - w in (0, 1) and bgr.shape[0] - h in (0, 1):
                bgr = np.ascontiguousarray(bgr[:h, :w])  # odd size: drop the last row/column
            else:  # the source changed size (e.g. a camera reopened at another resolution)
                bgr = cv2.resize(bgr, self._size)
        self._writer.write(bgr)

    def release(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def result_annotations(msg: Any) -> list[FaceAnnotation]:
    """The faces of a FaceEmotionArray as annotate.FaceAnnotation (what the node draws on ~/annotated)."""
    return [FaceAnnotation((f.roi.x_offset, f.roi.y_offset, f.roi.width, f.roi.height), f.label,
                           float(f.confidence), int(f.track_id), np.asarray(f.probabilities)) for f in msg.faces]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fer_demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bringup_arguments(parser)
    parser.add_argument("--duration", type=float, default=None,
                        help=f"seconds to run (default {DEFAULT_DURATION:g}; a video file without --loop runs "
                             "until it ends; 0 = until Ctrl-C)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help=f"annotated video (default {DEFAULT_OUTPUT})")
    parser.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    parser.add_argument("--print-every", type=float, default=1.0,
                        help="seconds between face lines (label changes are printed at once)")
    try:
        args = parse_bringup_args(parser, argv)
    except RosArgsError as e:
        return startup_error("fer_demo", str(e))
    duration = args.duration
    if duration is None:
        duration = 0.0 if (args.video and not args.loop) else DEFAULT_DURATION

    tune_for_shared_process()
    bringup = None
    video = mp4 = None
    video_done = False
    printer = ConsolePrinter(args.print_every)
    last_status: list = [None]
    with ros_process(ros_argv(argv, args.params_file)) as process:
        try:
            if not args.no_video:  # before the camera starts, so that the video has its first frame too
                mp4 = Mp4Writer(Path(args.output), lambda: bringup.camera.params["rate"] if bringup and bringup.camera
                                else 30.0)
                video = AnnotatedVideo(mp4)
            try:
                bringup = Bringup(args, camera_frame_hooks=[] if video is None else [
                    lambda frame, header: video.add_frame(stamp_ns(header), frame)])
            except (FerError, ParameterValueError, SourceError, FileNotFoundError, ValueError, ImportError) as e:
                hint = ""
                if "model" in str(e).lower() and not args.model:
                    hint = " (give a model with --model PATH)"
                return startup_error("fer_demo", f"{e}{hint}")
            for node in bringup.teardown_order:
                process.own(node)
            fer = bringup.fer
            on_faces = [printer]  # every FaceEmotionArray goes to each of these

            def dispatch(msg):
                for handle in on_faces:
                    handle(msg)

            listener = make_listener(fer.resolve_topic_name("~/faces"), dispatch, node_name="fer_demo_listener")
            process.own(listener)

            def on_diag(msg):
                for st in msg.status:
                    if st.name.startswith(fer.get_name()):
                        last_status[0] = st

            listener.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
            if video is not None:
                # fer_camera in this process hands its frames over directly (no DDS copy); otherwise:
                if bringup.camera is None:
                    def on_image(msg):
                        try:
                            video.add_frame(stamp_ns(msg.header), image_to_bgr(msg).copy())
                        except ImageConversionError:
                            pass  # the node counts and reports bad input

                    listener.create_subscription(Image, bringup.image_topic, on_image,
                                                 QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
                on_faces.append(
                    lambda msg: video.add_result(stamp_ns(msg.header), result_annotations(msg), tuple(msg.labels)))
            executor = MultiThreadedExecutor(num_threads=4)
            for node in bringup.nodes + [listener]:
                executor.add_node(node)
            process.own(executor=executor)

            source = bringup.camera.source.describe() if bringup.camera is not None else bringup.image_topic
            print(f"fer_demo: {source} -> fer_node ({fer.shell.info.get('backend')}, "
                  f"{Path(fer.shell.info.get('model', '')).name}); "
                  + (f"{duration:g} s" if duration else "until the end / Ctrl-C")
                  + ("" if args.no_video else f"; annotated video -> {args.output}"), flush=True)
            start = time.monotonic()
            ended_at = None
            code = 0
            try:
                while rclpy.ok():
                    if not spin_once_unless_shut_down(executor, 0.1):
                        break
                    now = time.monotonic()
                    if duration and now - start >= duration:
                        break
                    if fer.exit_code is not None:
                        code = fer.exit_code
                        break
                    if bringup.camera is not None and bringup.camera.exit_code is not None:
                        ended_at = ended_at or now
                        if now - ended_at > 1.5:  # let the node finish the last frames
                            break
            except (KeyboardInterrupt, ExternalShutdownException):
                pass
            elapsed = time.monotonic() - start
            print(f"fer_demo: {printer.frames} frames with {printer.faces} faces in {elapsed:.1f} s", flush=True)
            for tid, labels in sorted(printer.track_labels.items()):
                total = sum(labels.values())
                top = ", ".join(f"{k} {v / total:.0%}" for k, v in labels.most_common(3))
                print(f"  track #{tid}: {total} frames ({top})", flush=True)
            if last_status[0] is not None:
                v = status_values(last_status[0])
                print(f"  node: processed {v.get('frames_processed')} of {v.get('frames_received')} frames "
                      f"(dropped {v.get('dropped_frames')}), latency p50 {v.get('latency_p50_ms')} ms "
                      f"p95 {v.get('latency_p95_ms')} ms, backend {v.get('backend')}", flush=True)
            if video is not None:
                counts = video.close()
                mp4.release()
                video_done = True
                if video.error:
                    print(f"fer_demo: {video.error}", file=sys.stderr, flush=True)
                    code = code or 1
                elif counts.written:
                    print(f"fer_demo: wrote {counts.written} of {counts.frames} source frames to {mp4.path} "
                          f"({counts.own_result} with their own result, {counts.earlier_result} with an earlier "
                          f"frame's, {counts.no_result} before the first; {counts.overflow} not written)", flush=True)
                else:
                    print("fer_demo: no frame arrived; no video written", flush=True)
            return code
        finally:  # the video first (its last frames are still in memory); the nodes go with the process
            if video is not None and not video_done:
                video.close()
                mp4.release()
    return 0  # Ctrl-C or an external shutdown ended the block


if __name__ == "__main__":
    sys.exit(main())
