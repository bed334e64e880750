"""Small ROS 2 processes for the foundation tests and the DDS shared-memory measurement.

    python test/ros/ros_probe.py pub   --topic T --count N --rate HZ [--reliable] [--encoding E]
    python test/ros/ros_probe.py sub   --topic T --count N --idle S          (prints JSON)
    python test/ros/ros_probe.py relay --topic T --out T2 --duration S
    python test/ros/ros_probe.py compare [--count N] [--rate HZ]  (the measurement, prints a table)

Every role ends on its own (count reached, duration or idle timeout), so a stuck peer never hangs a
test. The ROS environment (ROS_DOMAIN_ID, discovery range, FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE) comes from
the caller.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout without pip install -e .
    sys.path.insert(0, str(REPO_ROOT))

# Solid colour of the probe image, as B, G, R; the relay reports what it decoded.
PROBE_BGR = (30, 140, 220)
STAMP_SEC_OFFSET = 1000  # header.stamp.sec = STAMP_SEC_OFFSET + frame index


def _qos(reliable: bool, depth: int):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )


def probe_image(encoding: str, width: int, height: int, pad: int):
    """A solid PROBE_BGR image in ``encoding`` with ``pad`` bytes of row padding."""
    import cv2
    import numpy as np

    from fer_perception.ros.image_msgs import numpy_to_image

    bgr = np.empty((height, width, 3), np.uint8)
    bgr[:] = PROBE_BGR
    native = {
        "bgr8": lambda: bgr,
        "rgb8": lambda: cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
        "bgra8": lambda: cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
        "mono8": lambda: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
    }[encoding]()
    msg = numpy_to_image(native, encoding)
    if pad:
        rows = np.frombuffer(msg.data, np.uint8).reshape(height, msg.step)
        padded = np.full((height, msg.step + pad), 0xEE, np.uint8)  # junk in the padding
        padded[:, : msg.step] = rows
        msg.step += pad
        msg.data = padded.tobytes()
    return msg


def run_pub(args) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("fer_probe_pub")
    pub = node.create_publisher(Image, args.topic, _qos(args.reliable, args.depth))
    msg = probe_image(args.encoding, args.width, args.height, args.pad)
    deadline = time.monotonic() + args.wait_sub
    while pub.get_subscription_count() < args.subscribers and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if pub.get_subscription_count() < args.subscribers:
        print(json.dumps({"error": "no subscriber matched", "topic": args.topic}), flush=True)
        return 3
    time.sleep(args.settle)  # let discovery of the reverse direction finish as well
    period = 1.0 / args.rate
    start = time.monotonic()
    for i in range(args.count):
        next_t = start + i * period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if args.real_stamps:
            msg.header.stamp = node.get_clock().now().to_msg()
        else:
            msg.header.stamp.sec, msg.header.stamp.nanosec = STAMP_SEC_OFFSET + i, 1000 + i
        msg.header.frame_id = f"probe_{i}"
        pub.publish(msg)
    time.sleep(args.linger)
    print(json.dumps({"published": args.count, "seconds": time.monotonic() - start}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_sub(args) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("fer_probe_sub")
    latencies: list[float] = []
    frames: set[str] = set()

    def on_image(msg: Image) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies.append((now - stamp) / 1e6)
        frames.add(msg.header.frame_id)

    node.create_subscription(Image, args.topic, on_image, _qos(args.reliable, args.depth))
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + args.timeout
    last = time.monotonic()
    while time.monotonic() < deadline and len(frames) < args.count:
        before = len(latencies)
        rclpy.spin_once(node, timeout_sec=0.05)
        if len(latencies) != before:
            last = time.monotonic()
        elif latencies and time.monotonic() - last > args.idle:
            break
    lat = sorted(latencies)
    result = {
        "received": len(frames),
        "latency_ms_median": lat[len(lat) // 2] if lat else None,
        "latency_ms_p95": lat[int(len(lat) * 0.95)] if lat else None,
    }
    print(json.dumps(result), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_relay(args) -> int:
    """Image -> image_conversion.image_to_bgr -> fer_msgs/FaceEmotionArray with the same header.

    The one face reported covers the whole image and carries the decoded mean B, G, R (divided by
    255) in probabilities[0:3], so the receiver can check the pixels survived the trip.
    """
    import rclpy
    from fer_msgs.msg import FaceEmotion, FaceEmotionArray
    from sensor_msgs.msg import Image

    from fer_perception.errors import ImageConversionError
    from fer_perception.image_conversion import image_to_bgr
    from fer_perception.labels import EMOTION_LABELS

    rclpy.init()
    node = rclpy.create_node("fer_probe_relay")
    pub = node.create_publisher(FaceEmotionArray, args.out, _qos(True, 10))

    def on_image(msg: Image) -> None:
        try:
            bgr = image_to_bgr(msg)
        except ImageConversionError as error:
            node.get_logger().error(f"{error.kind}: {error}")
            return
        out = FaceEmotionArray()
        out.header = msg.header
        out.labels = list(EMOTION_LABELS)
        face = FaceEmotion()
        face.roi.width, face.roi.height = bgr.shape[1], bgr.shape[0]
        face.probabilities = [float(v) / 255.0 for v in bgr.reshape(-1, 3).mean(axis=0)] + [0.0] * (
            len(EMOTION_LABELS) - 3
        )
        face.label = msg.encoding
        face.track_id = 1
        out.faces = [face]
        pub.publish(out)

    node.create_subscription(Image, args.topic, on_image, _qos(True, 10))
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    return 0


# --- measurement -----------------------------------------------------------------------------------


def _env(domain: int, profile: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    from fer_perception.ros.dds import PROFILE_ENVS, profile_environment

    for key in PROFILE_ENVS:
        env.pop(key, None)
    if profile:  # under the name this Fast DDS reads (3: FASTDDS_, 2.x/jazzy: FASTRTPS_)
        env.update(profile_environment(profile, env))
    return env


def run_compare(args) -> int:
    """Best-effort 640x480 bgr8 between two processes, with and without the SHM profile."""
    profile = str(REPO_ROOT / "config" / "fastdds_shm.xml")
    script = str(Path(__file__).resolve())
    cases = [("default", None, None), ("shm16MB both", profile, profile),
             ("shm16MB publisher only", profile, None), ("shm16MB subscriber only", None, profile)]
    domain = 100 + os.getpid() % 80
    rows = []
    for name, pub_profile, sub_profile in cases:
        domain += 1
        common = ["--topic", "/probe/image", "--count", str(args.count)]
        sub = subprocess.Popen(
            [sys.executable, script, "sub", *common, "--idle", "3", "--timeout", str(args.count / args.rate + 30)],
            env=_env(domain, sub_profile), stdout=subprocess.PIPE, text=True,
        )
        sub.stdout.readline()  # {"ready": true}
        pub = subprocess.run(
            [sys.executable, script, "pub", *common, "--rate", str(args.rate), "--real-stamps"],
            env=_env(domain, pub_profile), stdout=subprocess.PIPE, text=True, timeout=args.count / args.rate + 60,
        )
        out, _ = sub.communicate(timeout=60)
        result = json.loads(out.strip().splitlines()[-1])
        result.update(case=name, published=json.loads(pub.stdout.strip().splitlines()[-1]).get("published"))
        rows.append(result)
        print(json.dumps(result), flush=True)
    print(f"\n{'case':26} {'sent':>5} {'recv':>5} {'lost %':>7} {'median ms':>10} {'p95 ms':>8}")
    for r in rows:
        lost = 100.0 * (1 - r["received"] / r["published"]) if r["published"] else float("nan")
        med = f"{r['latency_ms_median']:.1f}" if r["latency_ms_median"] is not None else "-"
        p95 = f"{r['latency_ms_p95']:.1f}" if r["latency_ms_p95"] is not None else "-"
        print(f"{r['case']:26} {r['published']:>5} {r['received']:>5} {lost:>7.1f} {med:>10} {p95:>8}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["pub", "sub", "relay", "compare"])
    parser.add_argument("--topic", default="/probe/image")
    parser.add_argument("--out", default="/probe/faces")
    parser.add_argument("--count", type=int, default=150)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--reliable", action="store_true")
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--encoding", default="bgr8")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--pad", type=int, default=0)
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--wait-sub", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=0.5)
    parser.add_argument("--linger", type=float, default=1.0)
    parser.add_argument("--real-stamps", action="store_true")
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args(argv)
    return {"pub": run_pub, "sub": run_sub, "relay": run_relay, "compare": run_compare}[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
