"""The shared DDS test harness: waits stretch on a loaded machine, never shrink."""

from __future__ import annotations

import os
import signal

import pytest

import rosharness as rh


def test_patience_scales_with_load_and_can_be_fixed(monkeypatch):
    monkeypatch.delenv("FER_TEST_TIMEOUT_SCALE", raising=False)
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert rh.patience(30) == 30  # idle machine: the test's own timeout
    monkeypatch.setattr(os, "getloadavg", lambda: (2.5 * cores, 0, 0))
    assert rh.patience(30) == 75
    monkeypatch.setattr(os, "getloadavg", lambda: (40.0 * cores, 0, 0))
    assert rh.patience(30) == 120  # capped at 4x: a real hang still fails
    monkeypatch.setenv("FER_TEST_TIMEOUT_SCALE", "1.5")
    assert rh.patience(30) == 45


def test_doc_block_is_replaced_in_place_and_added_once(tmp_path):
    doc = tmp_path / "BENCH.md"
    begin, end = "<!-- BEGIN x -->", "<!-- END x -->"
    rh.replace_doc_block(doc, begin, end, "first", heading="## X")
    assert doc.read_text() == f"# Benchmarks\n\n## X\n\n{begin}\nfirst\n{end}\n"
    doc.write_text(doc.read_text() + "\n## Later\n\ntail text\n")
    rh.replace_doc_block(doc, begin, end, "second\n", heading="## X")
    text = doc.read_text()
    assert text.count(begin) == 1 and "first" not in text and f"{begin}\nsecond\n{end}" in text
    assert text.endswith("## Later\n\ntail text\n")  # what follows the block is kept


def test_doc_block_goes_under_an_existing_heading(tmp_path):
    doc = tmp_path / "BENCH.md"
    doc.write_text("# Benchmarks\n\n## X\n\n## Y\n\ny text\n")
    rh.replace_doc_block(doc, "<!-- b -->", "<!-- e -->", "body", heading="## X")
    assert doc.read_text() == "# Benchmarks\n\n## X\n\n<!-- b -->\nbody\n<!-- e -->\n\n## Y\n\ny text\n"


def test_named_doc_block_must_already_exist(tmp_path):
    doc = tmp_path / "R.md"
    doc.write_text("<!-- n:begin -->\nold\n<!-- n:end -->\nkept\n")
    rh.update_doc_block(doc, "n", "new")
    assert doc.read_text() == "<!-- n:begin -->\nnew\n<!-- n:end -->\nkept\n"
    with pytest.raises(RuntimeError, match="no <!-- m:begin -->"):
        rh.update_doc_block(doc, "m", "x")


@pytest.mark.ros
def test_closed_loop_times_the_answer_to_its_own_frame(ros_env, node_procs, client, model_onnx):
    """benchmarks/soak.py and vs_fer.py time the node with rh.ClosedLoop: one frame in flight, the
    answer matched by frame_id; no answer within the timeout is None, never a stale earlier answer."""
    import numpy as np

    from fer_perception.ros.image_msgs import numpy_to_image

    loop = rh.ClosedLoop(client, "/loop/image")
    node = node_procs.start(ros_env, params=rh.node_params(model_onnx, qos_reliability="reliable"),
                       remaps={"image": "/loop/image"})
    loop.wait_for_node(90)
    blank = numpy_to_image(np.zeros((240, 320, 3), np.uint8), "bgr8")
    answers = [loop.send(blank, str(i), rh.patience(30)) for i in range(3)]
    assert all(a is not None for a in answers), answers
    assert all(0 < seconds < 30 and faces == 0 for seconds, faces in answers)
    assert node.stop(signal.SIGINT, timeout=20) == 0
    assert loop.send(blank, "after-stop", 1.0) is None
