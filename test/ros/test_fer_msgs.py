"""fer_msgs: the generated Python messages exist, have the documented fields and serialize."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fer_perception.labels import EMOTION_LABELS, UNKNOWN_LABEL, valence_arousal

REPO_ROOT = Path(__file__).resolve().parents[2]
MSG_DIR = REPO_ROOT / "fer_msgs" / "msg"

try:
    from fer_msgs.msg import FaceEmotion, FaceEmotionArray
except ImportError as error:  # a clear instruction instead of a bare ImportError in every test
    pytest.fail(f"fer_msgs is not built into this environment ({error}); run scripts/bootstrap.sh", pytrace=False)


def test_face_emotion_fields():
    assert FaceEmotion.get_fields_and_field_types() == {
        "roi": "sensor_msgs/RegionOfInterest",
        "label": "string",
        "confidence": "float",
        "probabilities": "sequence<float>",
        "track_id": "uint64",
        "valence": "float",
        "arousal": "float",
        "detection_score": "float",
    }
    assert FaceEmotion.LABEL_UNKNOWN == UNKNOWN_LABEL


def test_face_emotion_array_fields():
    assert FaceEmotionArray.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "faces": "sequence<fer_msgs/FaceEmotion>",
        "labels": "sequence<string>",
    }


def test_msg_files_document_label_order_and_mapping():
    face = (MSG_DIR / "FaceEmotion.msg").read_text()
    array_ = (MSG_DIR / "FaceEmotionArray.msg").read_text()
    for text in (face, array_):
        assert "fer_perception/labels.py" in text and "EMOTION_LABELS" in text
    assert "VALENCE_AROUSAL" in face and "-1..1" in face
    assert ", ".join(EMOTION_LABELS) in " ".join(array_.replace("#", " ").split())


def test_serialization_round_trip():
    """Loads the C type support (libfer_msgs__rosidl_typesupport_*.so) through rclpy."""
    from rclpy.serialization import deserialize_message, serialize_message

    # float32 values throughout, so that == compares exactly after the float32 wire format
    probs = np.array([0.0625, 0.0, 0.0625, 0.75, 0.0625, 0.0625, 0.0], np.float32)
    valence, arousal = valence_arousal(probs)
    face = FaceEmotion(label="happy", confidence=0.75, probabilities=probs.tolist(), track_id=2**63 + 5,
                       valence=float(valence), arousal=float(arousal), detection_score=0.9375)
    face.roi.x_offset, face.roi.y_offset, face.roi.width, face.roi.height = 10, 20, 64, 80
    msg = FaceEmotionArray(faces=[face, FaceEmotion(label=FaceEmotion.LABEL_UNKNOWN)], labels=list(EMOTION_LABELS))
    msg.header.frame_id = "camera_optical"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000, 123
    back = deserialize_message(serialize_message(msg), FaceEmotionArray)
    assert back == msg
    assert back.faces[0].track_id == 2**63 + 5 and back.faces[0].roi.height == 80
    assert list(back.labels) == list(EMOTION_LABELS)
    np.testing.assert_allclose(back.faces[0].probabilities, probs)


def test_installed_interface_matches_source():
    """A stale build (msg edited, build script not re-run) shows up here."""
    import fer_msgs

    installed = None
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("fer_msgs")) / "msg"
    except Exception:  # no AMENT_PREFIX_PATH in a plain venv
        installed = Path(sys.prefix) / "share" / "fer_msgs" / "msg"
    if not installed.is_dir():
        pytest.skip(f"installed fer_msgs share dir not found (package at {fer_msgs.__file__})")
    for name in ("FaceEmotion.msg", "FaceEmotionArray.msg"):
        assert (installed / name).read_text() == (MSG_DIR / name).read_text(), (
            f"{installed / name} differs from the source; re-run scripts/build_interfaces.sh"
        )
