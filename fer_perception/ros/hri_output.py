"""REP-155 (ROS4HRI) face topics published by fer_node (parameter ``publish_rep155``).

For every tracked face, with the source image's header:

* ``/humans/faces/tracked`` (hri_msgs/IdsList): the ids of the tracks alive in this frame (a face
  the detector missed for up to ``track_max_missed`` frames stays listed, as in hri_face_detect);
* ``/humans/faces/<id>/roi`` (hri_msgs/NormalizedRegionOfInterest2D, ``c`` = detection score);
* ``/humans/faces/<id>/cropped`` (sensor_msgs/Image bgr8): the box scaled to fit
  ``rep155_face_width`` x ``rep155_face_height`` and centred on black;
* ``/humans/faces/<id>/aligned`` (sensor_msgs/Image mono8, same size): the face as the model saw
  it (FER2013's template, grey);
* ``/humans/faces/<id>/expression`` (hri_msgs/Expression): the REP-155 name of the label
  (fer_perception.hri.rep155_expression), valence, arousal, confidence.

cropped and aligned are drawn only while someone subscribes. Ids come from fer_perception.hri.FaceIds
(unique across restarts, stable per track). Per-id topics are latched (reliable, transient local,
depth 1: a late subscriber gets the last message) and are destroyed when their track ends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from fer_perception.hri import FaceIds, aligned_face_image, letterboxed_crop, normalized_roi, rep155_expression
from fer_perception.perception import PerceivedFace
from fer_perception.ros.image_msgs import numpy_to_image

#: QoS of every REP-155 topic this node publishes: a late subscriber still reads the last message.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     history=HistoryPolicy.KEEP_LAST)

FACES_NS = "/humans/faces"


def hri_messages():
    """The hri_msgs module, or raise ImportError (the caller reports it once)."""
    import hri_msgs.msg

    return hri_msgs.msg


@dataclass
class _FaceTopics:
    roi: Any
    cropped: Any
    aligned: Any
    expression: Any

    def all(self):
        return (self.roi, self.cropped, self.aligned, self.expression)


class HriOutput:
    """Publishes the REP-155 face topics of each processed frame (see the module docstring)."""

    def __init__(self, node: Node, ids: FaceIds, face_size: tuple[int, int]) -> None:
        self.msgs = hri_messages()
        from sensor_msgs.msg import Image

        self._image_type = Image
        self.node = node
        self.ids = ids
        self.face_size = face_size
        self._faces: dict[str, _FaceTopics] = {}
        self._ended: list[_FaceTopics] = []
        self._lock = threading.Lock()
        self._tracked_pub = node.create_publisher(self.msgs.IdsList, f"{FACES_NS}/tracked", LATCHED)
        # Ended faces' publishers are destroyed on the executor's thread: destroying them from the
        # frame worker while the executor waits on their QoS-event handles blocks the worker.
        self._reaper = node.create_timer(0.1, self._destroy_ended)

    def _topics(self, face_id: str) -> _FaceTopics:
        with self._lock:
            topics = self._faces.get(face_id)
        if topics is None:
            ns, n, m = f"{FACES_NS}/{face_id}", self.node, self.msgs
            topics = self._faces[face_id] = _FaceTopics(
                roi=n.create_publisher(m.NormalizedRegionOfInterest2D, f"{ns}/roi", LATCHED),
                cropped=n.create_publisher(self._image_type, f"{ns}/cropped", LATCHED),
                aligned=n.create_publisher(self._image_type, f"{ns}/aligned", LATCHED),
                expression=n.create_publisher(m.Expression, f"{ns}/expression", LATCHED))
        return topics

    def publish(self, header: Any, faces: list[PerceivedFace], bgr, tracked: list[str]) -> None:
        """One frame: ``faces`` seen in it, ``tracked`` the ids of every track still alive (seen or
        briefly missed)."""
        height, width = bgr.shape[:2]
        out_w, out_h = self.face_size
        m = self.msgs
        for face in faces:
            topics = self._topics(self.ids.id_for(face.track_id))
            roi = m.NormalizedRegionOfInterest2D(header=header)
            roi.xmin, roi.ymin, roi.xmax, roi.ymax = normalized_roi(face.box, width, height)
            roi.c = float(min(max(face.detection_score, 0.0), 1.0))
            topics.roi.publish(roi)
            expression = m.Expression(header=header, expression=rep155_expression(face.label),
                                      valence=float(face.valence), arousal=float(face.arousal),
                                      confidence=float(face.confidence))
            topics.expression.publish(expression)
            if topics.cropped.get_subscription_count() > 0:
                crop = letterboxed_crop(bgr, face.box, out_w, out_h)
                topics.cropped.publish(numpy_to_image(crop, "bgr8", header=header))
            if topics.aligned.get_subscription_count() > 0:
                aligned = aligned_face_image(bgr, face.box, face.keypoints, out_w, out_h, face.keypoints_model)
                topics.aligned.publish(numpy_to_image(aligned, "mono8", header=header))
        self._tracked_pub.publish(m.IdsList(header=header, ids=list(tracked)))

    def end(self, face_ids: Iterable[str]) -> None:
        """Tear down the topics of faces whose track ended (within 0.1 s, on the executor)."""
        with self._lock:
            for face_id in face_ids:
                topics = self._faces.pop(face_id, None)
                if topics is not None:
                    self._ended.append(topics)

    def _destroy_ended(self) -> None:
        with self._lock:
            ended, self._ended = self._ended, []
        for topics in ended:
            for pub in topics.all():
                self.node.destroy_publisher(pub)

    def close(self) -> None:
        self.end(list(self._faces))
        self._destroy_ended()
        self.node.destroy_timer(self._reaper)
        self.node.destroy_publisher(self._tracked_pub)
