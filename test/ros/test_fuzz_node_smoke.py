"""A CI-sized slice of benchmarks/fuzz_node.py: a few hundred hostile messages to a running fer_node
per transport (drawn by ~/annotated too), then a real face frame must still be answered correctly.
Every received message must be accounted for in /diagnostics (processed, refused by kind,
superseded or backend error), and the node must neither exit nor print a traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import rosharness as rh

pytestmark = [pytest.mark.ros, pytest.mark.hardening]
sys.path.insert(0, str(rh.REPO / "benchmarks"))


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_hostile_messages_to_running_node(transport, ros_env, tmp_path, model_onnx, face_frames):
    import fuzz_node
    from fer_perception.pipeline import FacePipeline

    frame = face_frames["one"]
    reference = FacePipeline.from_options(model_onnx, backend="onnxruntime", detector="blazeface").process(frame)
    assert reference, "no face in the reference frame"
    args = SimpleNamespace(rate=150.0, big=0, seed=11, log_dir=Path(tmp_path), annotated=True)
    r = fuzz_node.run_phase(transport, 300, args, model_onnx, frame, reference, env=ros_env)
    summary = {k: v for k, v in r.items() if k not in ("categories",)}
    assert r["crashes"] == [] and r["restarts"] == 0, summary
    assert r["tracebacks"] == 0 and r["internal_errors"] == 0, summary
    assert r["good_frame_before"]["ok"] and r["good_frame_after"]["ok"], summary
    assert r["received"] >= r["sent"], summary  # reliable QoS: nothing lost on the way
    assert r["unaccounted"] == 0, summary
    assert r["bad_input_total"] > 50 and r["processed"] > 20, summary
    assert r["exit_status"] == 0, summary
