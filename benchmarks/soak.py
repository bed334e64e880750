#!/usr/bin/env python3
"""Soak: push N frames through a running fer_node and watch its memory and latency.

    nice -n 19 .venv/bin/python benchmarks/soak.py --frames 50000 --update-doc
    nice -n 19 .venv/bin/python benchmarks/soak.py --frames 3000            # a short run

Frames: the shared clip (../shared/media/hamilton_clip.mp4, 640x360, 275 frames, looped) as bgr8
sensor_msgs/Image over DDS (reliable). Closed loop with one frame in flight: the next frame is
published as soon as the FaceEmotionArray of the previous one arrives (matched by header.frame_id),
so the rate is the highest the node sustains without dropping or queueing frames. A frame that is
not answered within --timeout seconds is counted as lost and the loop goes on.

Every --sample-every frames the node process's RSS (psutil) and the round-trip latencies of the
frames since the previous sample are recorded. Figures: RSS growth from the first window after
warm-up (--warmup frames) to the last window (each window --window-frac of the frames after
warm-up), the same for the median latency (drift) plus a least-squares slope, and a plot
(docs/img/soak.png). ``--update-doc`` writes them into docs/RELIABILITY.md (soak markers).
"""

from __future__ import annotations

import argparse
import json
import shlex
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test" / "harness"))  # rosharness
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rosharness as rh  # noqa: E402

DOC = REPO / "docs" / "RELIABILITY.md"
PLOT = REPO / "docs" / "img" / "soak.png"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=50_000)
    p.add_argument("--warmup", type=int, default=None, help="frames excluded from the growth figures (default: 5 %%, at most 2000)")
    p.add_argument("--window-frac", type=float, default=0.1, help="size of the first/last comparison windows")
    p.add_argument("--sample-every", type=int, default=None, help="frames between RSS samples (default: frames/200, >= 20)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds before a frame counts as lost")
    p.add_argument("--model", type=Path)
    p.add_argument("--backend", default="auto", help="fer_node backend (its default: auto)")
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path, default=None,
                   help=f"where the plot goes (default: {PLOT.relative_to(REPO)} with --update-doc, else LOG_DIR/soak.png)")
    p.add_argument("--update-doc", action="store_true")
    p.add_argument("--from-json", type=Path, help="do not run: render (and --update-doc) a previous --json result")
    p.add_argument("--log-dir", type=Path, default=Path("/tmp/fer_soak"))
    return p.parse_args(argv)


def clip_messages(limit: int = 300):
    import cv2

    from fer_perception.ros.image_msgs import numpy_to_image

    cap = cv2.VideoCapture(str(rh.MEDIA / "hamilton_clip.mp4"))
    msgs = []
    while len(msgs) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        msgs.append(numpy_to_image(np.ascontiguousarray(frame), "bgr8"))
    cap.release()
    if not msgs:
        raise SystemExit(f"cannot read {rh.MEDIA / 'hamilton_clip.mp4'}")
    return msgs


def run(args) -> dict:
    import psutil
    from diagnostic_msgs.msg import DiagnosticArray

    model, what = (args.model, "given") if args.model else rh.default_model()
    frames = args.frames
    warmup = args.warmup if args.warmup is not None else min(2000, frames // 20)
    every = args.sample_every or max(20, frames // 200)
    msgs = clip_messages()
    env = rh.isolated_env(args.log_dir / "ros")
    client = rh.RosClient(env, name="soak_client")
    diags = client.collect(DiagnosticArray, "/diagnostics")
    loop = rh.ClosedLoop(client, "/soak/image")
    params = rh.node_params(model, qos_reliability="reliable", qos_depth=10, diagnostics_period=1.0,
                            stale_timeout=60.0, backend=args.backend)
    node = rh.NodeProcess.start(env, args.log_dir, params=params, remaps={"image": "/soak/image"})
    res: dict = dict(model=f"{model.name} ({what})", frames_requested=frames, warmup=warmup, sample_every=every)
    samples: list[dict] = []
    latencies = np.full(frames, np.nan)
    faces = np.zeros(frames, np.int16)
    lost = 0
    try:
        loop.wait_for_node(120)
        proc = psutil.Process(node.pid)
        cpu0 = proc.cpu_times()
        t_start = time.monotonic()
        for i in range(frames):
            answer = loop.send(msgs[i % len(msgs)], str(i), args.timeout)
            if answer is not None:
                latencies[i], faces[i] = answer
            else:
                lost += 1
                if node.popen.poll() is not None:
                    res["crash"] = dict(at_frame=i, exit_status=node.popen.returncode, stderr=node.stderr()[-2000:])
                    break
            if (i + 1) % every == 0:
                window = latencies[i + 1 - every:i + 1]
                mem = proc.memory_info()
                cpu = proc.cpu_times()
                samples.append(dict(frame=i + 1, t=round(time.monotonic() - t_start, 2),
                                    rss_mb=round(mem.rss / 2**20, 2),
                                    cpu_s=round(cpu.user + cpu.system - cpu0.user - cpu0.system, 3),
                                    load1=round(os.getloadavg()[0], 2),
                                    lat_p50_ms=round(float(np.nanmedian(window)) * 1e3, 3) if np.isfinite(window).any() else None,
                                    lat_p95_ms=round(float(np.nanpercentile(window, 95)) * 1e3, 3) if np.isfinite(window).any() else None,
                                    lost=lost))
            if (i + 1) % (every * 20) == 0:
                s = samples[-1]
                print(f"[soak] {i + 1}/{frames} frames, {(i + 1) / (time.monotonic() - t_start):.1f} Hz, "
                      f"RSS {s['rss_mb']} MB, p50 {s['lat_p50_ms']} ms, lost {lost}", flush=True)
        elapsed = time.monotonic() - t_start
        cpu1 = proc.cpu_times()
        done = i + 1
        t_end = time.monotonic()
        try:  # a status published after the last frame, so that its counters include every frame
            status = rh.wait_until(lambda: rh.status_of(client.snapshot(diags), after=t_end + 0.1), 5.0, "final status")
        except AssertionError:
            status = rh.status_of(client.snapshot(diags))
        res["node_diagnostics"] = rh.values(status[1]) if status else {}
        res["backend"] = "{} (detector on {})".format(res["node_diagnostics"].get("backend", args.backend),
                                                      res["node_diagnostics"].get("detector_backend", "?"))
        res.update(frames=done, seconds=round(elapsed, 1), rate_hz=done / elapsed, lost=lost,
                   node_cpu_s=round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 1),
                   faces_per_frame=round(float(faces[:done].mean()), 3))
    finally:
        res["exit_status"] = node.stop(signal.SIGINT, timeout=20)
        res["tracebacks"] = node.output().count("Traceback")
        client.close()
    res["samples"] = samples
    lat = latencies[: res["frames"]]
    res["latency_ms"] = dict(p50=float(np.nanmedian(lat) * 1e3), p95=float(np.nanpercentile(lat, 95) * 1e3),
                             p99=float(np.nanpercentile(lat, 99) * 1e3), max=float(np.nanmax(lat) * 1e3))
    res.update(analyse(samples, lat, warmup, args.window_frac))
    return res


def analyse(samples: list[dict], lat: np.ndarray, warmup: int, frac: float) -> dict:
    """RSS growth and latency drift between the first and last windows after warm-up."""
    post = [s for s in samples if s["frame"] > warmup]
    n = len(lat)
    span = n - warmup
    w = max(1, int(span * frac))
    first = [s["rss_mb"] for s in post if s["frame"] <= warmup + w] or [post[0]["rss_mb"]]
    last = [s["rss_mb"] for s in post if s["frame"] > n - w] or [post[-1]["rss_mb"]]
    rss_first, rss_last = float(np.median(first)), float(np.median(last))
    lat_first = float(np.nanmedian(lat[warmup:warmup + w])) * 1e3
    lat_last = float(np.nanmedian(lat[n - w:])) * 1e3
    idx = np.arange(warmup, n)
    ok = np.isfinite(lat[warmup:])
    slope = float(np.polyfit(idx[ok], lat[warmup:][ok] * 1e3, 1)[0]) * 10_000 if ok.sum() > 2 else float("nan")
    rss_all = [s["rss_mb"] for s in post]
    # Node CPU time per frame (user + system) in the same windows: unlike wall-clock latency it hardly
    # depends on what else runs on the machine, so it shows whether the node's own work per frame drifts.
    def cpu_per_frame(lo: int, hi: int) -> float:
        a = [s for s in samples if s["frame"] <= lo]
        b = [s for s in samples if s["frame"] <= hi]
        if not b or "cpu_s" not in b[-1]:
            return float("nan")
        a_frame, a_cpu = (a[-1]["frame"], a[-1]["cpu_s"]) if a else (0, 0.0)
        return (b[-1]["cpu_s"] - a_cpu) / max(1, b[-1]["frame"] - a_frame) * 1e3
    cpu_first, cpu_last = cpu_per_frame(warmup, warmup + w), cpu_per_frame(n - w, n)
    loads = [s.get("load1") for s in post if s.get("load1") is not None]
    return dict(cpu_first_ms=cpu_first, cpu_last_ms=cpu_last, cpu_drift_pct=(cpu_last / cpu_first - 1) * 100,
                load_first=float(np.mean([s["load1"] for s in post if s["frame"] <= warmup + w and "load1" in s] or [np.nan])),
                load_last=float(np.mean([s["load1"] for s in post if s["frame"] > n - w and "load1" in s] or [np.nan])),
                load_max=max(loads) if loads else None,rss_first_mb=rss_first, rss_last_mb=rss_last, rss_growth_pct=(rss_last / rss_first - 1) * 100,
                rss_max_mb=max(rss_all) if rss_all else None, rss_min_mb=min(rss_all) if rss_all else None,
                lat_first_ms=lat_first, lat_last_ms=lat_last, latency_drift_pct=(lat_last / lat_first - 1) * 100,
                latency_slope_ms_per_10k=slope, window_frames=w)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = res["samples"]
    x = [d["frame"] for d in s]
    fig, (a, b, c) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    a.plot(x, [d["rss_mb"] for d in s], color="tab:blue")
    a.axvline(res["warmup"], color="grey", ls="--", lw=0.8)
    a.set_ylabel("fer_node RSS (MB)")
    a.set_title(f"fer_node soak: {res['frames']:,} frames at {res['rate_hz']:.1f} Hz (closed loop), "
                f"RSS {res['rss_growth_pct']:+.1f} % after warm-up")
    b.plot(x, [d["lat_p50_ms"] for d in s], label="p50", color="tab:green")
    b.plot(x, [d["lat_p95_ms"] for d in s], label="p95", color="tab:orange", alpha=0.7)
    b.axvline(res["warmup"], color="grey", ls="--", lw=0.8)
    b.set_ylabel("round-trip latency (ms)")
    b.legend(loc="upper right")
    if s and "cpu_s" in s[0]:
        cpu = np.diff([0.0] + [d["cpu_s"] for d in s]) / np.diff([0] + x) * 1e3
        c.plot(x, cpu, color="tab:purple", label="node CPU ms per frame")
        c.set_ylabel("node CPU (ms/frame)")
        c2 = c.twinx()
        c2.plot(x, [d["load1"] for d in s], color="grey", alpha=0.6, lw=0.8)
        c2.set_ylabel("load average (1 min)", color="grey")
        c.axvline(res["warmup"], color="grey", ls="--", lw=0.8)
    c.set_xlabel("frame")
    fig.text(0.01, 0.005, res.get("machine", ""), fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(res: dict) -> str:
    lat = res["latency_ms"]
    d = res.get("node_diagnostics", {})
    lines = [
        f"Run: `{res['command']}` — {res['date']}, {res['machine']}; model: {res['model']}, backend {res.get('backend', 'onnxruntime')}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| frames sent / answered / lost (no answer in {res.get('timeout', 2.0):g} s) | {res['frames']:,} / {res['frames'] - res['lost']:,} / {res['lost']:,} |",
        f"| duration, sustained rate (closed loop, one frame in flight) | {res['seconds']:,.0f} s, {res['rate_hz']:.1f} Hz |",
        f"| round-trip latency p50 / p95 / p99 / max (publish → FaceEmotionArray received) | {lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / {lat['max']:.0f} ms |",
        f"| node-internal latency p50 / p95 at the end (/diagnostics) | {d.get('latency_p50_ms', '-')} / {d.get('latency_p95_ms', '-')} ms |",
        f"| node RSS: first window after warm-up → last window (medians) | {res['rss_first_mb']:.1f} → {res['rss_last_mb']:.1f} MB (**{res['rss_growth_pct']:+.2f} %**) |",
        f"| node RSS min / max after warm-up | {res['rss_min_mb']:.1f} / {res['rss_max_mb']:.1f} MB |",
        f"| median latency: first window → last window | {res['lat_first_ms']:.1f} → {res['lat_last_ms']:.1f} ms (**{res['latency_drift_pct']:+.1f} %**) |",
        f"| latency trend (least squares after warm-up) | {res['latency_slope_ms_per_10k']:+.2f} ms per 10,000 frames |",
    ]
    if "cpu_first_ms" in res:
        lines += [
            f"| node CPU time per frame: first window → last window | {res['cpu_first_ms']:.2f} → {res['cpu_last_ms']:.2f} ms (**{res['cpu_drift_pct']:+.1f} %**) |",
            f"| machine load average (1 min): first window → last window, max | {res['load_first']:.1f} → {res['load_last']:.1f}, max {res['load_max']:.1f} |",
        ]
    lines += [
        f"| faces per frame (mean) | {res['faces_per_frame']} |",
        f"| node frames received / processed / dropped (/diagnostics) | {d.get('frames_received', '-')} / {d.get('frames_processed', '-')} / {d.get('dropped_frames', '-')} |",
        f"| node CPU time | {res['node_cpu_s']} s ({res['node_cpu_s'] / max(res['frames'], 1) * 1e3:.1f} ms per frame) |",
        f"| exit status after SIGINT, tracebacks | {res['exit_status']}, {res['tracebacks']} |",
        "",
        f"Warm-up: the first {res['warmup']:,} frames; windows: {res['window_frames']:,} frames each; RSS sampled "
        f"every {res['sample_every']} frames.",
        "",
        f"![soak: RSS and latency over the run](img/{Path(res['plot']).name})",
    ]
    if res.get("crash"):
        lines += ["", f"**The node crashed** at frame {res['crash']['at_frame']} (exit status {res['crash']['exit_status']})."]
    summary = dict(frames=res["frames"], rate_hz=res["rate_hz"], rss_growth_pct=res["rss_growth_pct"],
                   latency_drift_pct=res["latency_drift_pct"], cpu_drift_pct=res.get("cpu_drift_pct"),
                   load_first=res.get("load_first"), load_last=res.get("load_last"), date=res["date"])
    lines += ["", f"<!-- results soak {json.dumps(summary)} -->"]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json:
        res = json.loads(args.from_json.read_text())
    else:
        if args.plot is None:  # a trial run must not replace the documented figure
            args.plot = PLOT if args.update_doc else args.log_dir / "soak.png"
        machine = rh.machine_load()
        res = run(args)
        res.update(command="nice -n 19 .venv/bin/python benchmarks/soak.py " + shlex.join(sys.argv[1:] if argv is None else argv),
                   date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   machine=f"{machine} at the start, {rh.machine_load()} at the end", timeout=args.timeout,
                   plot=str(args.plot))
        plot(res, args.plot)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
    text = markdown(res)
    print(text)
    if args.update_doc:
        from fuzz_node import render_headline

        rh.update_doc_block(DOC, "soak", text)
        render_headline()
    ok = res["rss_growth_pct"] < 5 and not res.get("crash")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
