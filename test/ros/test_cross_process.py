"""Over real DDS between processes: Image -> relay (image_conversion) -> fer_msgs/FaceEmotionArray.

    publisher process --sensor_msgs/Image--> relay process --FaceEmotionArray--> this test
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fer_perception.labels import EMOTION_LABELS

pytestmark = pytest.mark.ros

PROBE = Path(__file__).resolve().parent / "ros_probe.py"
PROBE_BGR = (30, 140, 220)  # ros_probe.PROBE_BGR
STAMP_SEC_OFFSET = 1000  # ros_probe.STAMP_SEC_OFFSET


def _start(role: str, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(PROBE), role, *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _stop(procs: list[subprocess.Popen]) -> list[str]:
    errors = []
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
        errors.append(err or "")
    return errors


def test_image_to_face_emotion_array_across_processes(ros_env):
    import rclpy
    from fer_msgs.msg import FaceEmotionArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from fer_perception.ros.dds import profile_env_names

    assert all(ros_env.get(name) for name in profile_env_names(ros_env)), "conftest should apply config/fastdds_shm.xml"
    relay = _start("relay", ros_env, "--topic", "/probe/image", "--out", "/probe/faces", "--duration", "40")
    # 640x480 rgb8 with 64 bytes of row padding: the relay must honour step and swap channels.
    pub = _start("pub", ros_env, "--topic", "/probe/image", "--reliable", "--depth", "10", "--encoding", "rgb8",
                 "--pad", "64", "--count", "400", "--rate", "10", "--wait-sub", "30")
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("fer_foundation_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received: list[FaceEmotionArray] = []
    node.create_subscription(FaceEmotionArray, "/probe/faces", received.append,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    try:
        deadline = time.monotonic() + 45
        while not received and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            for proc in (relay, pub):
                if proc.poll() is not None:
                    out, err = proc.communicate()
                    pytest.fail(f"{proc.args[2]} exited early ({proc.returncode}): {out}\n{err[-2000:]}")
        assert received, "no FaceEmotionArray within 45 s (publisher -> relay -> test over DDS)"
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        stderr = _stop([relay, pub])

    msg = received[0]
    frame_id = msg.header.frame_id
    assert frame_id.startswith("probe_"), frame_id
    index = int(frame_id.split("_")[1])
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (STAMP_SEC_OFFSET + index, 1000 + index)
    assert list(msg.labels) == list(EMOTION_LABELS)
    (face,) = msg.faces
    assert face.label == "rgb8" and (face.roi.width, face.roi.height) == (640, 480)
    decoded = [round(p * 255) for p in face.probabilities[:3]]
    assert decoded == list(PROBE_BGR), f"relay decoded BGR {decoded}, expected {PROBE_BGR}"
    for err in stderr:
        assert "XMLPARSER" not in err, f"Fast DDS rejected config/fastdds_shm.xml:\n{err[-2000:]}"


def test_best_effort_640x480_frames_arrive_with_shm_profile(ros_env):
    """With the default 512 kB SHM segment ~97 % of these frames are lost (see foundation-notes).

    The environment is what fer_perception.ros.dds.ensure_fastdds_profile makes of one without
    any profile variable (what every entry point does), so this checks that the profile reaches the
    Fast DDS of this distribution (3.x reads FASTDDS_DEFAULT_PROFILES_FILE, Jazzy's 2.14 only
    FASTRTPS_DEFAULT_PROFILES_FILE). No process may warn about a deprecated name either."""
    from fer_perception.ros.dds import PROFILE_ENVS, ensure_fastdds_profile

    env = {k: v for k, v in ros_env.items() if k not in PROFILE_ENVS}
    assert ensure_fastdds_profile(env)
    count = 45
    sub = _start("sub", env, "--topic", "/probe/big", "--count", str(count), "--idle", "2", "--timeout", "40")
    try:
        assert json.loads(sub.stdout.readline()) == {"ready": True}
        pub = subprocess.run(
            [sys.executable, str(PROBE), "pub", "--topic", "/probe/big", "--count", str(count), "--rate", "30",
             "--real-stamps", "--wait-sub", "30"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert pub.returncode == 0, pub.stdout + pub.stderr[-2000:]
        out, err = sub.communicate(timeout=60)
    finally:
        _stop([sub])
    result = json.loads(out.strip().splitlines()[-1])
    assert result["received"] >= 0.8 * count, f"best-effort frames lost with the SHM profile: {result}"
    assert "XMLPARSER" not in err + pub.stderr
    assert "deprecated" not in err + pub.stderr, err + pub.stderr
