"""A model trained on a data set with other class names publishes those names, in its order, over DDS.

fer-train trains a tiny 6-class model on CK+'s names without contempt (anger, disgust, fear, happy,
sadness, surprise: the same count as no FER2013 subset, and three names FER2013 spells otherwise),
fer-export writes ONNX + LiteRT and the sidecar, and fer_node runs it on each CPU backend: ~/labels
and every FaceEmotionArray must carry exactly those names, and every face one of them (or unknown).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rosharness as rh

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CK6 = ("anger", "disgust", "fear", "happy", "sadness", "surprise")


@pytest.fixture(scope="module")
def ck6_export(tmp_path_factory) -> Path:
    for module in ("tensorflow", "fer_training"):
        pytest.importorskip(module)
    root = tmp_path_factory.mktemp("ck6")
    rng = np.random.default_rng(6)
    labels = np.arange(240) % len(CK6)
    images = rng.normal(100, 20, (240, 48, 48))
    for i, c in enumerate(labels):  # learnable: a bright square at a class-specific place
        images[i, 6 + 12 * (c // 3):16 + 12 * (c // 3), 6 + 12 * (c % 3):16 + 12 * (c % 3)] += 110
    data = root / "ck6.npz"
    np.savez(data, images=np.clip(images, 0, 255).astype(np.uint8), labels=labels, label_names=np.array(CK6),
             split=np.array(["train"] * 180 + ["val"] * 60), subject=np.array([""] * 240))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    bin_dir = Path(sys.executable).parent
    for argv in ([bin_dir / "fer-train", "--data", data, "--epochs", "1", "--run-dir", root / "run"],
                 [bin_dir / "fer-export", "--model", root / "run" / "model.keras", "--out-dir", root / "export",
                  "--formats", "onnx,tflite-fp32", "--calibration-data", data]):
        proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root / "export" / "model.onnx"


def test_the_export_names_the_data_sets_classes(ck6_export):
    sidecar = json.loads(ck6_export.with_suffix(".json").read_text())
    assert tuple(sidecar["labels"]) == CK6
    assert (ck6_export.parent / "model_fp32.tflite").is_file()


@pytest.mark.parametrize("backend", ["onnxruntime", "tflite"])
def test_fer_node_publishes_the_models_own_labels_on_each_cpu_backend(backend, ck6_export, ros_env, node_procs,
                                                                      client):
    from fer_msgs.msg import FaceEmotionArray
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from skimage import data
    from std_msgs.msg import String

    from fer_perception.ros.image_msgs import numpy_to_image

    if backend == "tflite":
        pytest.importorskip("ai_edge_litert")
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    labels_msgs = client.collect(String, "/fer_node/labels", latched, stamped=False)
    faces = client.collect(FaceEmotionArray, "/fer_node/faces", client.qos(True, 10), stamped=False)
    node = node_procs.start(ros_env, params=rh.node_params(ck6_export, backend=backend, qos_reliability="reliable",
                                                          confidence_threshold=0.0),
                            remaps={"image": "/ck6/image"})
    pub = client.publisher(Image, "/ck6/image")
    rh.wait_for_subscribers(pub, 1, 90)
    frame = rh.fit_640x480(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    msg = numpy_to_image(frame, "bgr8")

    def answered():
        pub.publish(msg)
        return [m for m in client.snapshot(faces) if m.faces]

    got = rh.wait_until(answered, 60, "a FaceEmotionArray with a face", interval=0.3)
    out = got[-1]
    assert tuple(out.labels) == CK6
    assert all(f.label in CK6 and len(f.probabilities) == len(CK6) for f in out.faces)
    assert tuple(json.loads(client.snapshot(labels_msgs)[-1].data)) == CK6
    assert f"configured: backend {backend}" in node.output()
    assert node.stop(timeout=20) == 0, node.output()
