"""FramePerception (the node's per-frame work, no ROS) against a scripted PerceptionPipeline."""

from __future__ import annotations

import numpy as np
import pytest

from fer_perception.errors import FerError
from fer_perception.labels import EMOTION_LABELS, UNKNOWN_LABEL, valence_arousal
from fer_perception.params import defaults
from fer_perception.perception import FramePerception, PerceivedFace, max_faces_capacity
from fer_perception.pipeline import FaceResult, PerceptionPipeline, PipelineInfo
from fer_perception.smoothing import SmoothingConfig
from fer_perception.tracking import FaceTracker


def probs_for(label: str, p: float = 0.9) -> np.ndarray:
    out = np.full(len(EMOTION_LABELS), (1.0 - p) / (len(EMOTION_LABELS) - 1), np.float32)
    out[EMOTION_LABELS.index(label)] = p
    return out


class ScriptedPipeline:
    """Returns the faces it was told to; records the face limits it was given."""

    model_confidence_threshold = None

    def __init__(self, labels: tuple[str, ...] = EMOTION_LABELS) -> None:
        self.labels = labels
        self.faces: list[FaceResult] = []
        self.limits: tuple[int, int] | None = None
        self.closed = False

    def say(self, *faces: tuple[tuple[int, int, int, int], np.ndarray]) -> None:
        self.faces = [FaceResult(box=box, detection_score=0.75, keypoints=None,
                                 crop=np.zeros((48, 48), np.uint8), probabilities=probs, labels=self.labels)
                      for box, probs in faces]

    def process(self, bgr):
        return list(self.faces)

    def info(self) -> PipelineInfo:
        return PipelineInfo(backend="scripted", model="none", detector="scripted")

    def stage_seconds(self) -> dict[str, float]:
        return {"infer": 0.001}

    def set_face_limits(self, min_face_size: int, max_faces: int) -> None:
        self.limits = (min_face_size, max_faces)

    def close(self) -> None:
        self.closed = True


FRAME = np.zeros((240, 320, 3), np.uint8)


def make(pipeline: ScriptedPipeline, **smoothing) -> FramePerception:
    config = SmoothingConfig.from_yaml_defaults(**smoothing)
    tracker = FaceTracker.from_params(defaults("fer_node"))
    return FramePerception(pipeline, tracker, config, min_face_size=10, max_faces=2)


def test_scripted_pipeline_implements_the_interface():
    assert isinstance(ScriptedPipeline(), PerceptionPipeline)


def test_limits_reach_the_pipeline_and_bound_the_faces():
    pipe = ScriptedPipeline()
    perception = make(pipe)
    assert pipe.limits == (10, 2)
    pipe.say(((0, 0, 5, 5), probs_for("happy")), ((10, 10, 40, 40), probs_for("sad")),
             ((100, 10, 60, 60), probs_for("happy")), ((200, 10, 50, 50), probs_for("angry")))
    faces = perception.process(FRAME)
    assert [f.box for f in faces] == [(100, 10, 60, 60), (200, 10, 50, 50)]  # too small dropped, 2 largest
    perception.set_face_limits(0, 0)
    assert pipe.limits == (0, max_faces_capacity())  # 0 = as many as the batch holds
    assert len(perception.process(FRAME)) == 4


def test_faces_carry_track_ids_smoothed_labels_and_valence_arousal():
    pipe = ScriptedPipeline()
    perception = make(pipe)
    pipe.say(((20, 30, 60, 60), probs_for("happy")))
    [first] = perception.process(FRAME)
    assert isinstance(first, PerceivedFace) and first.label == "happy" and first.detection_score == 0.75
    va = valence_arousal(first.probabilities)
    assert (first.valence, first.arousal) == pytest.approx((float(va[0]), float(va[1])))
    pipe.say(((24, 30, 60, 60), probs_for("happy")))
    [second] = perception.process(FRAME)
    assert second.track_id == first.track_id


def test_boxes_are_clipped_to_the_frame():
    pipe = ScriptedPipeline()
    perception = make(pipe)
    pipe.say(((-10, 200, 60, 60), probs_for("happy")))
    [face] = perception.process(FRAME)
    assert face.box == (0, 200, 50, 40)


def test_invalid_model_output_is_a_fer_error():
    pipe = ScriptedPipeline()
    perception = make(pipe)
    pipe.say(((20, 30, 60, 60), np.full(len(EMOTION_LABELS), np.nan, np.float32)))
    with pytest.raises(FerError, match="invalid probabilities"):
        perception.process(FRAME)
    pipe.say(((20, 30, 60, 60), np.full(3, 1 / 3, np.float32)))
    with pytest.raises(FerError, match="expected 7 finite values"):
        perception.process(FRAME)


def test_smoothing_changes_wait_for_the_next_frame_and_reset_forgets_tracks():
    pipe = ScriptedPipeline()
    perception = make(pipe)
    pipe.say(((20, 30, 60, 60), probs_for("happy", 0.6)))
    [face] = perception.process(FRAME)
    assert face.label == "happy"
    perception.set_smoothing(SmoothingConfig.from_yaml_defaults(confidence_threshold=0.95))
    [face2] = perception.process(FRAME)
    assert face2.label == UNKNOWN_LABEL and face2.track_id == face.track_id
    perception.request_reset()
    [face3] = perception.process(FRAME)
    assert face3.track_id != face.track_id  # a new track: the old one was forgotten before this frame


def test_the_models_own_labels_name_every_face():
    """A 6-class CK+ model (no contempt) with CK+'s names: published names, order and count are its own."""
    ck = ("anger", "disgust", "fear", "happy", "sadness", "surprise")
    pipe = ScriptedPipeline(ck)
    perception = make(pipe)
    assert perception.labels == ck
    probs = np.array([0.02, 0.02, 0.02, 0.02, 0.9, 0.02], np.float32)
    pipe.say(((20, 30, 60, 60), probs))
    [face] = perception.process(FRAME)
    assert face.label == "sadness" and face.probabilities.shape == (6,)
    va = valence_arousal(probs, ck)  # 'sadness' sits where FER2013's 'sad' does
    assert (face.valence, face.arousal) == pytest.approx((float(va[0]), float(va[1])), abs=1e-6)
    assert face.valence < -0.5
    pipe.say(((20, 30, 60, 60), probs_for("sad")))  # 7 values from a 6-class model: refused, not misnamed
    with pytest.raises(FerError, match="expected 6 finite values"):
        perception.process(FRAME)


def test_an_eight_class_model_with_contempt():
    ferplus = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    pipe = ScriptedPipeline(ferplus)
    perception = make(pipe)
    probs = np.full(8, 0.02, np.float32)
    probs[7] = 0.86
    pipe.say(((20, 30, 60, 60), probs))
    [face] = perception.process(FRAME)
    assert face.label == "contempt" and len(face.probabilities) == 8


def test_rep155_input_mode_builds_the_emotion_model_without_a_detector(monkeypatch):
    """input_mode rep155 classifies another detector's faces: pipeline_from_params loads no detector."""
    import fer_perception.pipeline as pipeline_mod
    from fer_perception.perception import NODE_KEY, pipeline_from_params
    from fer_perception.pipeline import NO_DETECTOR, EmotionClassifier, FaceClassifier

    built = []
    real = pipeline_mod.create_detector
    monkeypatch.setattr(pipeline_mod, "create_detector", lambda *a, **k: built.append(a) or real(*a, **k))
    options = defaults(NODE_KEY)
    options.update(backend="onnxruntime", threads=1)
    camera = pipeline_from_params(options)
    assert len(built) == 1 and camera.info().detector == "blazeface"  # the counterpart: camera mode has one
    options["input_mode"] = "rep155"
    classifier = pipeline_from_params(options)
    assert len(built) == 1  # none more
    assert isinstance(classifier, EmotionClassifier) and isinstance(classifier, FaceClassifier)
    assert not hasattr(classifier, "detector") and not hasattr(classifier, "process")
    assert classifier.info().detector == NO_DETECTOR and classifier.info().model == camera.info().model
    assert classifier.labels == camera.labels
    crops = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(classifier.classify(crops), camera.classify(crops), atol=1e-6)
    assert classifier.classify(crops[:0]).shape == (0, len(classifier.labels))
    classifier.close()
    camera.close()
