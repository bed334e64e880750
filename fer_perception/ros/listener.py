"""fer_listener: print fer_msgs/FaceEmotionArray messages from a topic.

    fer_listener                                  # /fer_node/faces
    fer_listener --topic /robot/fer_node/faces --count 10 --timeout 20
    fer_listener --json                           # one JSON object per message

One line per message: stamp, frame_id, number of faces, then per face
``#<track id> <label> <confidence> [x,y wxh]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from fer_perception.ros.process import (
    RosArgsError,
    non_ros_args,
    ros_process,
    spin_once_unless_shut_down,
    startup_error,
)

DEFAULT_TOPIC = "/fer_node/faces"


def face_dicts(msg: Any) -> list[dict]:
    out = []
    for f in msg.faces:
        out.append({
            "track_id": int(f.track_id),
            "label": f.label,
            "confidence": round(float(f.confidence), 4),
            "box": [int(f.roi.x_offset), int(f.roi.y_offset), int(f.roi.width), int(f.roi.height)],
            "valence": round(float(f.valence), 4),
            "arousal": round(float(f.arousal), 4),
            "detection_score": round(float(f.detection_score), 4),
            "probabilities": {name: round(float(p), 4) for name, p in zip(msg.labels, f.probabilities)},
        })
    return out


def format_message(msg: Any) -> str:
    stamp = f"{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}"
    faces = " ".join(
        f"#{f['track_id']} {f['label']} {f['confidence']:.2f} [{f['box'][0]},{f['box'][1]} {f['box'][2]}x{f['box'][3]}]"
        for f in face_dicts(msg)
    )
    n = len(msg.faces)
    return f"{stamp} {msg.header.frame_id or '-'} {n} face{'s' if n != 1 else ''}" + (f": {faces}" if faces else "")


def format_json(msg: Any) -> str:
    return json.dumps({
        "stamp": msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
        "frame_id": msg.header.frame_id,
        "faces": face_dicts(msg),
    })


def make_listener(topic: str = DEFAULT_TOPIC, callback: Callable[[Any], None] | None = None,
                  node_name: str = "fer_listener", **node_kwargs: Any):
    """A node that calls ``callback(msg)`` for every FaceEmotionArray on ``topic``."""
    from fer_msgs.msg import FaceEmotionArray  # built by scripts/bootstrap.sh: main() reports its absence

    node = Node(node_name, **node_kwargs)
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(FaceEmotionArray, topic, callback or (lambda m: print(format_message(m), flush=True)),
                             qos)
    return node


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fer_listener", description="Print FaceEmotionArray messages.")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"FaceEmotionArray topic (default {DEFAULT_TOPIC})")
    parser.add_argument("--count", type=int, default=0, help="exit after N messages (0 = run until Ctrl-C)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="exit with status 1 if --count messages did not arrive within S seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object per message")
    try:
        own = non_ros_args(argv)
    except RosArgsError as e:
        return startup_error("fer_listener", str(e))
    args = parser.parse_args(own)
    try:
        import fer_msgs.msg  # noqa: F401
    except ImportError as e:
        return startup_error("fer_listener", f"fer_msgs is not importable ({e}); run scripts/bootstrap.sh")

    fmt = format_json if args.json else format_message
    received = [0]

    def on_msg(msg: Any) -> None:
        received[0] += 1
        print(fmt(msg), flush=True)

    with ros_process(argv) as process:
        node = make_listener(args.topic, on_msg)
        executor = SingleThreadedExecutor()
        process.own(node, executor)
        executor.add_node(node)
        deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
        while rclpy.ok():
            if args.count and received[0] >= args.count:
                return 0
            if deadline is not None and time.monotonic() > deadline:
                print(f"fer_listener: {received[0]} of {args.count or 'any'} messages on {args.topic} "
                      f"within {args.timeout:g} s", file=sys.stderr)
                return 1
            if not spin_once_unless_shut_down(executor, 0.1):
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
