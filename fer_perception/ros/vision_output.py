"""vision_msgs output of fer_node (parameter ``publish_vision_msgs``), for generic consumers
(behaviour trees, rviz plugins, Foxglove).

* ``~/detections`` (vision_msgs/Detection2DArray), every processed frame, with the source header:
  one Detection2D per face: ``bbox`` in pixels (centre, size), ``id`` = the face's REP-155 id
  (fer_perception.hri.FaceIds, stable per track), ``results`` = one ObjectHypothesisWithPose per
  class of the model, ``class_id`` = the class index as a string, ``score`` = its smoothed
  probability (the pose is left empty: a 2-D classifier has none).
* ``~/label_info`` (vision_msgs/LabelInfo, latched): ``class_map`` = class index -> class name
  from the model's sidecar, ``threshold`` = confidence_threshold (re-published when it changes).
"""

from __future__ import annotations

from typing import Any, Sequence

from rclpy.node import Node

from fer_perception.hri import FaceIds
from fer_perception.perception import PerceivedFace
from fer_perception.ros.hri_output import LATCHED


def vision_messages():
    import vision_msgs.msg

    return vision_msgs.msg


class VisionOutput:
    def __init__(self, node: Node, labels: Sequence[str], ids: FaceIds, threshold: float) -> None:
        self.msgs = vision_messages()
        self.node = node
        self.labels = tuple(labels)
        self.ids = ids
        self._detections_pub = node.create_publisher(self.msgs.Detection2DArray, "~/detections", 10)
        self._label_info_pub = node.create_publisher(self.msgs.LabelInfo, "~/label_info", LATCHED)
        self.publish_label_info(threshold)

    def publish_label_info(self, threshold: float) -> None:
        m = self.msgs
        info = m.LabelInfo(class_map=[m.VisionClass(class_id=i, class_name=name)
                                      for i, name in enumerate(self.labels)],
                           threshold=float(threshold))
        info.header.stamp = self.node.get_clock().now().to_msg()
        self._label_info_pub.publish(info)

    def publish(self, header: Any, faces: list[PerceivedFace]) -> None:
        m = self.msgs
        out = m.Detection2DArray(header=header)
        for face in faces:
            x, y, w, h = face.box
            det = m.Detection2D(header=header, id=self.ids.id_for(face.track_id))
            det.bbox.center.position.x = x + w / 2.0
            det.bbox.center.position.y = y + h / 2.0
            det.bbox.size_x, det.bbox.size_y = float(w), float(h)
            for i, p in enumerate(face.probabilities):
                hyp = m.ObjectHypothesisWithPose()
                hyp.hypothesis.class_id = str(i)
                hyp.hypothesis.score = float(p)
                det.results.append(hyp)
            out.detections.append(det)
        self._detections_pub.publish(out)

    def close(self) -> None:
        self.node.destroy_publisher(self._detections_pub)
        self.node.destroy_publisher(self._label_info_pub)
