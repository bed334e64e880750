"""The CUDA half of the TensorRT backend, run for real on a machine with a GPU and cuda-python but no
TensorRT (scripts/gpu_check.sh): the device query, the error mapping of ``_check``, page-locked host
buffers, async copies and a stream, through the runner's own helpers.

    python tools/cuda_check.py [--json OUT.json]

Prints one line per check and exits 0 when all pass, 1 when one fails, 2 when cuda-python or a GPU
is missing (nothing to check).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_perception.errors import BackendUnavailableError  # noqa: E402
from fer_perception.inference import tensorrt_runtime as trt_runtime  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results: dict = {}
    try:
        cudart = trt_runtime._import_cudart()
        results["gpu"] = trt_runtime.gpu_info()
    except BackendUnavailableError as exc:
        print(f"cuda_check: nothing to check here: {exc}")
        return 2
    print(f"gpu: {results['gpu']}")
    checks = {}

    # _check maps an error code to TensorRTError (an absurd allocation must fail, not crash).
    try:
        trt_runtime._check(cudart.cudaMalloc(1 << 62))
        checks["error_mapping"] = "FAIL: a 4 EiB cudaMalloc did not report an error"
    except trt_runtime.TensorRTError as exc:
        checks["error_mapping"] = f"ok ({exc})"

    # Page-locked host buffers, async copies on a stream, a round trip, timed.
    stream = trt_runtime._check(cudart.cudaStreamCreate())
    n = 64 * 48 * 48
    host_ptr = int(trt_runtime._check(cudart.cudaMallocHost(n * 4)))
    back_ptr = int(trt_runtime._check(cudart.cudaMallocHost(n * 4)))
    host = np.frombuffer((ctypes.c_byte * (n * 4)).from_address(host_ptr), dtype=np.float32)
    back = np.frombuffer((ctypes.c_byte * (n * 4)).from_address(back_ptr), dtype=np.float32)
    host[:] = np.arange(n, dtype=np.float32)
    device = trt_runtime._check(cudart.cudaMalloc(n * 4))
    h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        trt_runtime._check(cudart.cudaMemcpyAsync(device, host_ptr, n * 4, h2d, stream))
        trt_runtime._check(cudart.cudaMemcpyAsync(back_ptr, device, n * 4, d2h, stream))
        trt_runtime._check(cudart.cudaStreamSynchronize(stream))
        times.append(time.perf_counter() - t0)
    checks["pinned_round_trip"] = "ok" if np.array_equal(host, back) else "FAIL: the copy came back different"
    results["round_trip_ms_median"] = float(np.median(times) * 1e3)
    results["round_trip_bytes"] = n * 4
    for ptr in (host_ptr, back_ptr):
        cudart.cudaFreeHost(ptr)
    cudart.cudaFree(device)
    cudart.cudaStreamDestroy(stream)
    results["checks"] = checks
    for name, verdict in checks.items():
        print(f"{name}: {verdict}")
    print(f"pinned H2D+D2H of {n * 4} bytes: median {results['round_trip_ms_median']:.3f} ms (50 runs)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(v.startswith("ok") for v in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
