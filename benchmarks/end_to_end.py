"""End-to-end latency and CPU of fer_node over DDS, camera and node in separate processes.

    .venv/bin/python benchmarks/end_to_end.py --model fer_perception/models/arch1_fer2013.onnx
    .venv/bin/python benchmarks/end_to_end.py --model M.onnx --faces 1 3 --duration 20 --threads 1
    .venv/bin/python benchmarks/end_to_end.py --model M.onnx --no-doc --json out/e2e.json

For each face count, a synthetic 640x480 frame is composed from faces found (BlazeFace) in real
photos (../shared/media/obama.jpg, two_people.jpg; scikit-image's astronaut as a fallback) on a
plain gradient background. ``fer_camera --image frame.png --rate 30`` publishes it (header.stamp =
now() at publication) and ``fer_node`` (another process) processes it; this script receives
``/fer_node/faces`` and measures, per message, receipt time - header.stamp (the same system clock),
and the node process's CPU time over the measurement window (psutil; % of one core). The first
``--warmup`` seconds are not measured. Results are printed and written to docs/BENCHMARKS.md between
the markers of the section "End to end over DDS" (the rest of that file is left alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FER_SHARED_DIR", REPO.parent / "shared"))
DOC = REPO / "docs" / "BENCHMARKS.md"
BEGIN = "<!-- BEGIN end_to_end: written by benchmarks/end_to_end.py, edit there -->"
END = "<!-- END end_to_end -->"
WIDTH, HEIGHT = 640, 480


sys.path.insert(0, str(REPO / "test" / "harness"))
import rosharness as rh  # noqa: E402  (frames, processes, machine load)


def cpu_seconds(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc] + proc.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_case(n_faces: int, frame_png: Path, args, env: dict, workdir: Path) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from fer_msgs.msg import FaceEmotionArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    import psutil

    from fer_perception.ros.diagnostics import status_values

    node_args = ["fer_perception.ros.node", "--ros-args", "-r", "image:=/bench/image",
                 "-p", f"model_path:={args.model}", "-p", f"backend:={args.backend}",
                 "-p", f"threads:={args.threads}", "-p", f"detector:={args.detector}"]
    if args.params_file:
        node_args += ["--params-file", args.params_file]
    cam_args = ["fer_perception.ros.camera_source", "--image", str(frame_png), "--rate", str(args.rate),
                "--ros-args", "-r", "image:=/bench/image"]
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
    node = rclpy.create_node("e2e_bench", context=ctx)
    lock = threading.Lock()
    samples: list[tuple[int, int, int]] = []  # receipt ns, stamp ns, faces
    status: list = [None]
    measuring = [False]

    def on_faces(msg):
        now = time.time_ns()
        if measuring[0]:
            with lock:
                samples.append((now, msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, len(msg.faces)))

    def on_diag(msg):
        for st in msg.status:
            if st.name.startswith("fer_node"):
                status[0] = status_values(st)

    node.create_subscription(FaceEmotionArray, "/fer_node/faces", on_faces,
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    fer = rh.LoggedProcess(node_args[0], node_args[1:], env, workdir / f"fer_node_{n_faces}.log")
    cam = None
    try:
        fer.wait_for_output("active:", 60)
        cam = rh.LoggedProcess(cam_args[0], cam_args[1:], env, workdir / f"fer_camera_{n_faces}.log")
        cam.wait_for_output("publishing", 30)
        end = time.monotonic() + args.warmup
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        start_status = dict(status[0] or {})
        measuring[0] = True
        t0, c0, cc0 = time.monotonic(), cpu_seconds(fer.popen.pid), cpu_seconds(cam.popen.pid)
        sys0 = psutil.cpu_times()
        end = t0 + args.duration
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        measuring[0] = False
        t1, c1, cc1 = time.monotonic(), cpu_seconds(fer.popen.pid), cpu_seconds(cam.popen.pid)
        sys1 = psutil.cpu_times()
        end = time.monotonic() + 1.2  # one more diagnostics status
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        end_status = dict(status[0] or {})
    finally:
        if cam is not None:
            cam.stop()
        fer.stop()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    with lock:
        data = np.array(samples, dtype=np.int64).reshape(-1, 3)
    if len(data) == 0:
        raise RuntimeError(f"no FaceEmotionArray received; node log:\n{fer.output()[-2000:]}")
    lat_ms = (data[:, 0] - data[:, 1]) / 1e6
    wall = t1 - t0
    processed = int(end_status.get("frames_processed", 0)) - int(start_status.get("frames_processed", 0))
    received = int(end_status.get("frames_received", 0)) - int(start_status.get("frames_received", 0))
    dropped = int(end_status.get("dropped_frames", 0)) - int(start_status.get("dropped_frames", 0))
    return {
        "faces": n_faces,
        "messages": int(len(data)),
        "message_rate_hz": round(len(data) / wall, 2),
        "faces_per_message": round(float(data[:, 2].mean()), 2),
        "latency_ms": {q: round(float(np.percentile(lat_ms, p)), 2)
                       for q, p in (("p50", 50), ("p90", 90), ("p99", 99))} | {"max": round(float(lat_ms.max()), 2)},
        "node_cpu_percent_of_one_core": round(100.0 * (c1 - c0) / wall, 1),
        "camera_cpu_percent_of_one_core": round(100.0 * (cc1 - cc0) / wall, 1),
        # Whole machine, all processes (ours and everybody else's): how much CPU was left.
        "machine_cpu_busy_percent": round(100.0 * (1.0 - (sys1.idle - sys0.idle) / max(
            sum(sys1) - sum(sys0), 1e-9)), 1),
        "node_frames_received": received,
        "node_frames_processed": processed,
        "node_dropped_frames": dropped,
        "node_processing_p50_ms": end_status.get("latency_p50_ms"),
        "node_processing_p95_ms": end_status.get("latency_p95_ms"),
        "node_stage_ms": {k[6:-3]: v for k, v in end_status.items() if k.startswith("stage.")},
        "backend": end_status.get("backend"),
        "duration_s": round(wall, 1),
    }


# --- report ----------------------------------------------------------------------------------------

def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime


    return {"cpu": cpu, "cores": os.cpu_count(), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "load_note": rh.machine_load(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__}


def markdown(results: list[dict], info: dict, command: str, args) -> str:
    goal = {"p50": 10.0, "p99": 25.0, "cpu": 25.0}
    lines = [
        "## End to end over DDS",
        "",
        f"fer_camera -> fer_node -> receiver, three processes on one machine over Fast DDS (shared-memory "
        f"profile config/fastdds_shm.xml), {WIDTH}x{HEIGHT} bgr8 frames at {args.rate:g} fps composed from faces "
        "in real photos; latency = receipt of `/fer_node/faces` - `header.stamp` (stamped by fer_camera at "
        "publication, same clock); CPU = the fer_node process's user+system time over the measurement "
        "window, in % of one core. Goal: p50 <= 10 ms, p99 <= 25 ms, <= 25 % of one core with one face.",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores; load average at start {info['load_avg_1_5_15']} "
        f"({info.get('load_note', 'shared with other jobs')}); Python {info['python']}, ONNX Runtime {info['onnxruntime']}. "
        f"Model: `{Path(args.model).name}`{' (' + args.model_note + ')' if args.model_note else ''}; backend "
        f"{results[0]['backend']}, detector {args.detector}, threads {args.threads}; "
        f"{args.warmup:g} s warm-up, {args.duration:g} s measured per row.",
        "",
        "| faces | messages (rate) | latency p50 | p90 | p99 | max | fer_node CPU (% of one core) | "
        "node processing p50 / p95 | node stages detect / align / infer (mean) | dropped by node | fer_camera CPU | "
        "machine CPU busy (all cores, all processes) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        L, s = r["latency_ms"], r["node_stage_ms"]
        lines.append(
            f"| {r['faces']} | {r['messages']} ({r['message_rate_hz']:g} Hz) | {L['p50']:.1f} ms | {L['p90']:.1f} ms | "
            f"{L['p99']:.1f} ms | {L['max']:.1f} ms | {r['node_cpu_percent_of_one_core']:.0f} % | "
            f"{r['node_processing_p50_ms']} / {r['node_processing_p95_ms']} ms | "
            f"{s.get('detect', '-')} / {s.get('align', '-')} / {s.get('infer', '-')} ms | "
            f"{r['node_dropped_frames']} of {r['node_frames_received']} | {r['camera_cpu_percent_of_one_core']:.0f} % | "
            f"{r['machine_cpu_busy_percent']:.0f} % |")
    one = next((r for r in results if r["faces"] == 1), None)
    if one is not None:
        verdict = [
            f"p50 {one['latency_ms']['p50']:.1f} ms {'<=' if one['latency_ms']['p50'] <= goal['p50'] else '>'} 10 ms",
            f"p99 {one['latency_ms']['p99']:.1f} ms {'<=' if one['latency_ms']['p99'] <= goal['p99'] else '>'} 25 ms",
            f"CPU {one['node_cpu_percent_of_one_core']:.0f} % "
            f"{'<=' if one['node_cpu_percent_of_one_core'] <= goal['cpu'] else '>'} 25 %",
        ]
        met = (one["latency_ms"]["p50"] <= goal["p50"] and one["latency_ms"]["p99"] <= goal["p99"]
               and one["node_cpu_percent_of_one_core"] <= goal["cpu"])
        lines += ["", f"One face against the goal: {'; '.join(verdict)} -> {'met' if met else 'NOT met'} in this run."]
        lines += ["", "Reading the tail: the per-frame work is fixed (node stages above), so a node processing "
                  "p95 far above its p50 while the machine's CPU is near 100 % busy points to frames waiting for a "
                  "core (the other jobs on this machine), not to work the node adds; the p99 of this table is "
                  "therefore a property of the machine's load as much as of the node. It has not been measured "
                  "on an idle machine here."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from fer_perception.ros.dds import ensure_fastdds_profile
    from fer_perception.pipeline import DEFAULT_MODEL_PATH

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL_PATH), help="expression model (default: shipped)")
    parser.add_argument("--model-note", default="", help="note on the model for the report")
    parser.add_argument("--backend", default="auto", help="fer_node backend (its default: auto)")
    parser.add_argument("--detector", default="blazeface")
    parser.add_argument("--threads", type=int, default=None,
                        help="fer_node threads parameter (default: config/fer.yaml's)")
    parser.add_argument("--params-file", help="extra fer_node parameters file")
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per case")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/BENCHMARKS.md")
    parser.add_argument("--render", metavar="JSON",
                        help="measure nothing: re-render the docs section from a --json file of an earlier run")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        run_args = argparse.Namespace(**saved["args"])
        section = markdown(saved["results"], saved["machine"], saved["command"], run_args)
        print(section)
        if not args.no_doc:
            rh.replace_doc_block(DOC, BEGIN, END, section)
            print(f"updated {DOC}")
        return 0
    if args.threads is None:
        from fer_perception.params import load_specs

        args.threads = load_specs("fer_node")["threads"].default
    if not Path(args.model).is_file():
        print(f"end_to_end: model {args.model} not found; pass --model PATH", file=sys.stderr)
        return 2
    command = shlex.join([".venv/bin/python", "benchmarks/end_to_end.py", *(sys.argv[1:] if argv is None else argv)])

    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(100, 200)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    ensure_fastdds_profile(env)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    ensure_fastdds_profile()
    info = machine()
    crops = rh.face_crops()
    results = []
    with tempfile.TemporaryDirectory(prefix="fer_e2e_") as tmp:
        workdir = Path(tmp)
        env["ROS_LOG_DIR"] = str(workdir / "ros_log")
        for n in args.faces:
            png = workdir / f"frame_{n}.png"
            cv2.imwrite(str(png), rh.compose_frame(n, crops, WIDTH, HEIGHT))
            r = run_case(n, png, args, env, workdir)
            results.append(r)
            print(json.dumps(r), flush=True)
            if r["faces_per_message"] < n - 0.5:
                print(f"end_to_end: warning: {n} faces pasted, {r['faces_per_message']} found per frame", file=sys.stderr)
    section = markdown(results, info, command, args)
    print(section)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        saved_args = {k: getattr(args, k) for k in ("model", "model_note", "backend", "detector", "threads", "rate",
                                                      "duration", "warmup")}
        Path(args.json).write_text(json.dumps({"machine": info, "results": results, "command": command,
                                               "args": saved_args}, indent=2))
    if not args.no_doc:
        rh.replace_doc_block(DOC, BEGIN, END, section)
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
