"""FacePipeline: frame in -> per-face boxes, crops and probabilities out, one batch per frame."""

from __future__ import annotations

import numpy as np
import pytest

from fer_perception.detection import create_detector
from fer_perception.inference import DEFAULT_MODEL_PATH, available_backends, create_backend
from fer_perception.pipeline import DEFAULT_MODEL_PATH as PIPELINE_DEFAULT
from fer_perception.pipeline import FacePipeline, FaceResult, PerceptionPipeline, StageTimings


class CountingBackend:
    """Wraps a backend and records the batch size of every predict call."""

    def __init__(self, backend):
        self.inner = backend
        self.calls: list[int] = []
        self.name = backend.name
        self.labels = backend.labels

    def predict(self, faces):
        self.calls.append(len(faces))
        return self.inner.predict(faces)

    def describe(self):
        return self.inner.describe()


@pytest.fixture(scope="module")
def pipeline(random_model):
    return FacePipeline.from_options(random_model["onnx"], backend="onnxruntime", threads=2)


def _check_results(results, image, count):
    assert len(results) == count
    h, w = image.shape[:2]
    for r in results:
        assert isinstance(r, FaceResult)
        x, y, bw, bh = r.box
        assert all(isinstance(v, int) for v in r.box)
        assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h and bw > 0 and bh > 0
        assert 0.5 <= r.detection_score <= 1.0
        assert r.keypoints.shape == (6, 2)
        assert r.crop.shape == (48, 48) and r.crop.dtype == np.uint8
        assert r.probabilities.shape == (7,) and r.probabilities.dtype == np.float32
        assert r.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert r.label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    areas = [r.box[2] * r.box[3] for r in results]
    assert areas == sorted(areas, reverse=True)  # largest face first


def test_default_model_path_constant():
    assert PIPELINE_DEFAULT == DEFAULT_MODEL_PATH
    assert DEFAULT_MODEL_PATH.name == "arch1_fer2013.onnx" and DEFAULT_MODEL_PATH.parent.name == "models"


def test_astronaut(pipeline, astronaut_bgr):
    _check_results(pipeline.process(astronaut_bgr), astronaut_bgr, 1)


def test_obama(pipeline, obama_bgr):
    _check_results(pipeline.process(obama_bgr), obama_bgr, 1)


def test_two_people_one_batch(random_model, two_people_bgr):
    backend = CountingBackend(create_backend("onnxruntime", random_model["onnx"]))
    pipe = FacePipeline(create_detector("blazeface", backend="onnxruntime"), backend)
    results = pipe.process(two_people_bgr)
    _check_results(results, two_people_bgr, 2)
    assert backend.calls == [2]  # both faces in ONE inference call
    # The probabilities are the model's for the crops shown.
    direct = backend.inner.predict(np.stack([r.crop for r in results])[..., None].astype(np.float32))
    assert np.abs(direct - np.stack([r.probabilities for r in results])).max() <= 1e-6
    t = pipe.last_timings
    assert isinstance(t, StageTimings) and t.faces == 2 and t.detections == 2
    assert t.detect_ms > 0 and t.align_ms > 0 and t.infer_ms > 0
    assert t.total_ms >= t.detect_ms + t.align_ms + t.infer_ms - 1e-6


def test_no_face_no_inference(random_model):
    backend = CountingBackend(create_backend("onnxruntime", random_model["onnx"]))
    pipe = FacePipeline(create_detector("blazeface", backend="onnxruntime"), backend)
    assert pipe.process(np.zeros((480, 640, 3), np.uint8)) == []
    assert backend.calls == [] and pipe.last_timings.faces == 0


def test_max_faces_and_min_face_size(random_model, two_people_bgr):
    det = create_detector("blazeface", backend="onnxruntime")
    be = create_backend("onnxruntime", random_model["onnx"])
    both = FacePipeline(det, be).process(two_people_bgr)
    one = FacePipeline(det, be, max_faces=1).process(two_people_bgr)
    assert len(one) == 1 and one[0].box == both[0].box  # the larger face is kept
    assert FacePipeline(det, be, min_face_size=500).process(two_people_bgr) == []
    with pytest.raises(ValueError):
        FacePipeline(det, be, max_faces=0)


@pytest.mark.skipif(available_backends()["tflite"] is not None, reason="LiteRT not installed")
def test_backends_agree_per_face(random_model, two_people_bgr, astronaut_bgr):
    """Same frame through ONNX Runtime and LiteRT (detector and classifier): same faces, probabilities
    within 1e-5 (ONNX vs TFLite fp32)."""
    ort_pipe = FacePipeline.from_options(random_model["onnx"], backend="onnxruntime")
    lite_pipe = FacePipeline.from_options(random_model["onnx"], backend="tflite")
    assert lite_pipe.backend.name == "tflite" and lite_pipe.detector.backend == "tflite"
    for image in (two_people_bgr, astronaut_bgr):
        a, b = ort_pipe.process(image), lite_pipe.process(image)
        assert len(a) == len(b) >= 1
        for ra, rb in zip(a, b):
            assert np.abs(np.subtract(ra.box, rb.box)).max() <= 1
            # Same crops up to a grey level where a sub-pixel keypoint difference moves the warp.
            assert np.abs(ra.crop.astype(int) - rb.crop).mean() < 1.0
        # Classifier agreement on identical input: ONNX vs TFLite fp32.
        crops = np.stack([r.crop for r in a])[..., None].astype(np.float32)
        assert np.abs(ort_pipe.backend.predict(crops) - lite_pipe.backend.predict(crops)).max() <= 1e-5


def test_haar_pipeline(random_model, astronaut_bgr):
    pipe = FacePipeline.from_options(random_model["onnx"], backend="onnxruntime", detector="haar")
    results = pipe.process(astronaut_bgr)
    assert len(results) == 1 and results[0].keypoints is None and results[0].crop.shape == (48, 48)


def test_from_options_errors(random_model, tmp_path):
    from fer_perception.errors import BackendUnavailableError, DetectorError, ModelLoadError

    with pytest.raises(ModelLoadError):
        FacePipeline.from_options(tmp_path / "missing.onnx", backend="onnxruntime")
    with pytest.raises(BackendUnavailableError):
        FacePipeline.from_options(random_model["onnx"], backend="nope")
    with pytest.raises(DetectorError):
        FacePipeline.from_options(random_model["onnx"], backend="onnxruntime", detector="nope")


def test_face_limits_can_change_between_frames(random_model, two_people_bgr):
    pipe = FacePipeline(create_detector("blazeface", backend="onnxruntime"),
                        create_backend("onnxruntime", random_model["onnx"]), max_faces=1)
    assert len(pipe.process(two_people_bgr)) == 1
    pipe.max_faces = 5  # above the size the batch buffer was made for
    assert len(pipe.process(two_people_bgr)) == 2
    pipe.min_face_size = 175  # drops the smaller (~167-170 px) face
    assert len(pipe.process(two_people_bgr)) == 1


def test_face_pipeline_is_the_node_interface(random_model, astronaut_bgr):
    """What fer_node reads of a pipeline (PerceptionPipeline): info, stage times, limits, close."""
    pipe = FacePipeline.from_options(random_model["onnx"], backend="onnxruntime", detector="blazeface", threads=1)
    assert isinstance(pipe, PerceptionPipeline)
    info = pipe.info()
    assert (info.backend, info.detector, info.detector_backend) == ("onnxruntime", "blazeface", "onnxruntime")
    assert info.model == str(random_model["onnx"]) and info.precision == "fp32" and info.providers
    assert set(info.as_dict()) == {"backend", "model", "detector", "detector_backend", "providers", "precision"}
    assert pipe.stage_seconds() == {}  # nothing processed yet
    pipe.process(astronaut_bgr)
    stages = pipe.stage_seconds()
    assert set(stages) == {"detect", "align", "infer", "total"} and stages["total"] >= stages["infer"] > 0
    pipe.set_face_limits(10_000, 1)
    assert pipe.process(astronaut_bgr) == []  # the one face is smaller than 10,000 px
    with pytest.raises(ValueError):
        pipe.set_face_limits(0, 0)
    pipe.close()
