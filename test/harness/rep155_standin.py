"""A stand-in REP-155 face detector: publishes what hri_face_detect (ROS4HRI's detector) publishes,
for detections the caller gives it, so fer_node's ``input_mode: rep155`` can be tested and
benchmarked without mediapipe/YuNet.

Per frame, for every face (in hri_face_detect's order and layout; REP-155):

* ``/humans/faces/<id>/roi`` NormalizedRegionOfInterest2D: the integer pixel box divided by the
  image size, ``c`` = detection score;
* ``/humans/faces/<id>/landmarks`` FacialLandmarks: 70 normalised points, only the five a YuNet-like
  detector gives filled (pupils, nose, mouth corners), the rest 0 with c = 0; ``width``/``height``
  = the image size;
* ``/humans/faces/<id>/cropped`` Image bgr8 128 x 128: the box scaled (aspect kept) and centred on
  black, only while subscribed;
* ``/humans/faces/<id>/aligned`` Image bgr8 128 x 128: hri_face_detect's own template (the box
  rotated to level the eyes, then letterboxed), only while subscribed;

then ``/humans/faces/tracked`` IdsList with the image header. Ids are 5 random lower-case letters;
every publisher is reliable, volatile, depth 1 (hri_face_detect's QoS). A face listed in
``retained`` stays in ``tracked`` without any image that frame (hri_face_detect's retention).
This is a test tool written from the REP and hri_face_detect's documented behaviour, not its code.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

CROP_SIZE = 128
RIGHT_PUPIL, LEFT_PUPIL, NOSE, MOUTH_OUTER_RIGHT, MOUTH_OUTER_LEFT = 68, 69, 30, 48, 54


@dataclass
class StandinFace:
    """One detection: integer pixel box and the five keypoints (subject's right eye, left eye, nose,
    mouth right, mouth left) in pixels."""

    box: tuple[int, int, int, int]
    keypoints: np.ndarray
    score: float = 0.9


def faces_from_detections(detections: Sequence[Any]) -> list[StandinFace]:
    """StandinFace from fer_perception.detection.Detection (BlazeFace: eyes, nose, mouth centre):
    integer box like hri_face_detect, mouth corners placed either side of the mouth centre."""
    out = []
    for d in detections:
        x, y, w, h = (int(v) for v in d.box)
        k = np.asarray(d.keypoints, float)
        eye_dist = float(np.hypot(*(k[1] - k[0])))
        mouth = k[3]
        out.append(StandinFace((x, y, w, h), np.array([k[0], k[1], k[2], mouth - (0.35 * eye_dist, 0),
                                                      mouth + (0.35 * eye_dist, 0)]), float(d.score)))
    return out


def letterbox(region: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    h, w = region.shape[:2]
    scale = min(size / w, size / h)
    scaled = cv2.resize(region, None, fx=scale, fy=scale)
    sh, sw = scaled.shape[:2]
    out = np.zeros((size, size, 3), np.uint8)
    ox, oy = int((size - sw) / 2), int((size - sh) / 2)
    out[oy:oy + sh, ox:ox + sw] = scaled
    return out


def their_aligned(bgr: np.ndarray, face: StandinFace, size: int = CROP_SIZE) -> np.ndarray:
    """hri_face_detect's ``aligned``: the ROI expanded by half its size, rotated about its centre
    so the eyes are level, the box cut out again and letterboxed."""
    x, y, w, h = face.box
    H, W = bgr.shape[:2]
    x0, x1, y0, y1 = max(0, x - w // 2), min(x + w + w // 2, W), max(0, y - h // 2), min(y + h + h // 2, H)
    pre = bgr[y0:y1, x0:x1]
    (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
    angle = math.degrees(math.atan2(ly - ry, lx - rx))
    centre = (pre.shape[1] / 2, pre.shape[0] / 2)
    rotated = cv2.warpAffine(pre, cv2.getRotationMatrix2D(centre, angle, 1.0), (pre.shape[1], pre.shape[0]))
    roi = rotated[y - y0:y - y0 + h, x - x0:x - x0 + w]
    return letterbox(roi, size)


@dataclass
class FaceTopicsData:
    """What the stand-in publishes for one face, as plain values (also used without ROS by the
    accuracy gate, test/core/test_rep155_gate.py)."""

    roi: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax normalised
    points: dict[int, tuple[float, float]]  # FacialLandmarks index -> normalised (x, y)
    width: int
    height: int
    cropped: np.ndarray  # bgr8 128 x 128, letterboxed


def face_topics_data(bgr: np.ndarray, face: StandinFace) -> FaceTopicsData:
    H, W = bgr.shape[:2]
    x, y, w, h = face.box
    points = {}
    for index, (px, py) in zip((RIGHT_PUPIL, LEFT_PUPIL, NOSE, MOUTH_OUTER_RIGHT, MOUTH_OUTER_LEFT), face.keypoints):
        px, py = min(max(int(px), 0), W - 1), min(max(int(py), 0), H - 1)  # integer pixels, like the detector
        points[index] = (px / W, py / H)
    return FaceTopicsData((x / W, y / H, (x + w) / W, (y + h) / H), points, W, H, letterbox(bgr[y:y + h, x:x + w]))


class Rep155Standin:
    """Publishes REP-155 face topics from an rclpy node (see the module docstring)."""

    def __init__(self, node: Any, seed: int | None = None) -> None:
        from hri_msgs.msg import FacialLandmarks, IdsList, NormalizedPointOfInterest2D, NormalizedRegionOfInterest2D
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.node = node
        self.m = dict(FacialLandmarks=FacialLandmarks, IdsList=IdsList, Point=NormalizedPointOfInterest2D,
                      Roi=NormalizedRegionOfInterest2D, Image=Image)
        self.qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                              history=HistoryPolicy.KEEP_LAST)
        self.rng = random.Random(seed)
        self.tracked_pub = node.create_publisher(IdsList, "/humans/faces/tracked", self.qos)
        self.pubs: dict[str, dict[str, Any]] = {}

    def new_id(self) -> str:
        return "".join(self.rng.choices(string.ascii_lowercase, k=5))

    def _publishers(self, face_id: str) -> dict[str, Any]:
        pubs = self.pubs.get(face_id)
        if pubs is None:
            ns, n, m = f"/humans/faces/{face_id}", self.node, self.m
            pubs = self.pubs[face_id] = {
                "roi": n.create_publisher(m["Roi"], f"{ns}/roi", self.qos),
                "landmarks": n.create_publisher(m["FacialLandmarks"], f"{ns}/landmarks", self.qos),
                "cropped": n.create_publisher(m["Image"], f"{ns}/cropped", self.qos),
                "aligned": n.create_publisher(m["Image"], f"{ns}/aligned", self.qos),
            }
        return pubs

    def drop(self, face_id: str) -> None:
        for pub in self.pubs.pop(face_id, {}).values():
            self.node.destroy_publisher(pub)

    def subscribed(self, face_id: str) -> bool:
        pubs = self.pubs.get(face_id)
        return bool(pubs) and pubs["cropped"].get_subscription_count() > 0

    def publish(self, bgr: np.ndarray, header: Any, faces: dict[str, StandinFace],
                retained: Sequence[str] = ()) -> None:
        """One frame: ``faces`` id -> detection; ``retained`` ids listed in tracked without images."""
        from fer_perception.ros.image_msgs import numpy_to_image

        m = self.m
        for face_id, face in faces.items():
            pubs = self._publishers(face_id)
            data = face_topics_data(bgr, face)
            xmin, ymin, xmax, ymax = data.roi
            pubs["roi"].publish(m["Roi"](header=header, xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax,
                                         c=float(face.score)))
            lm = m["FacialLandmarks"](header=header, width=data.width, height=data.height)
            points = [m["Point"]() for _ in range(70)]
            for index, (px, py) in data.points.items():
                points[index] = m["Point"](x=px, y=py, c=float(face.score))
            lm.landmarks = points
            pubs["landmarks"].publish(lm)
            if pubs["cropped"].get_subscription_count() > 0:
                pubs["cropped"].publish(numpy_to_image(data.cropped, "bgr8", header=header))
            if pubs["aligned"].get_subscription_count() > 0:
                pubs["aligned"].publish(numpy_to_image(their_aligned(bgr, face), "bgr8", header=header))
        self.tracked_pub.publish(m["IdsList"](header=header, ids=list(faces) + list(retained)))
