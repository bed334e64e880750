"""REP-155 (ROS4HRI) without ROS: expression names, face ids, face images, re-alignment, frame grouping.

    rep155_expression("fear")                   # "scared" (the one table: REP155_EXPRESSION_OF)
    ids = FaceIds(); ids.id_for(track_id)       # "f3k9xq_1": unique across restarts, stable per track
    normalized_roi(box, width, height)          # (xmin, ymin, xmax, ymax) in 0..1
    letterboxed_crop(bgr, box, 128, 128)        # REP-155 `cropped`: the box, scaled to fit, centred
    realign_rep155(cropped, roi, eyes, aspect)  # 48 x 48 crop framed like FER2013, from another detector
    grouper = StampGrouper(max_wait=0.05)       # one frame's faces, from separate topics, into one batch

fer_perception.ros.hri_output publishes and fer_perception.ros.hri_input subscribes; everything that
can be decided without messages lives here, so it is unit-tested (test/core/test_hri.py).

Why re-align (REP-155 in): another detector's ``aligned`` image follows its own template (for
hri_face_detect: eyes levelled, the box scaled to fit 128 x 128), not FER2013's tight framing that
the model was trained on. Its ``cropped`` image, ``roi`` and ``landmarks`` say where the eyes are in
that crop, so the crop is re-aligned with fer_perception.preprocessing.align_face: the same
transform the node applies to its own detections.
"""

from __future__ import annotations

import math
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

import cv2
import numpy as np

from fer_perception.labels import UNKNOWN_LABEL, canonical_label
from fer_perception.preprocessing import BLAZEFACE_BOX_EYE_RATIOS, FACE_SIZE, align_face, alignment_for

# --- expression names --------------------------------------------------------------------------------

#: hri_msgs/Expression's constants (REP-155), in the message's order. test/ros/test_rep155_out.py
#: checks this list against the built message, so it cannot drift.
REP155_EXPRESSIONS: tuple[str, ...] = (
    "neutral", "angry", "sad", "happy", "surprised", "disgusted", "scared", "pleading", "vulnerable",
    "despaired", "guilty", "disappointed", "embarrassed", "horrified", "skeptical", "annoyed", "furious",
    "suspicious", "rejected", "bored", "tired", "asleep", "confused", "amazed", "excited",
)

#: The one table from this project's canonical class names (fer_perception.labels.CANONICAL_NAMES)
#: to REP-155's expression constants. A model's class name is first made canonical (``anger`` ->
#: ``angry``), then looked up here.
REP155_EXPRESSION_OF: dict[str, str] = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "scared",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprised",
    "neutral": "neutral",
}

#: The expression published for a face whose label is ``unknown`` (below confidence_threshold): no
#: categorical claim; valence, arousal and confidence are still filled in.
NO_EXPRESSION = ""


def rep155_expression(label: str) -> str:
    """The REP-155 ``expression`` string of one of the model's class names.

    Rule: canonical name in REP155_EXPRESSION_OF -> its REP constant; else a name that already is a
    REP constant (lower case) -> itself; else (a class REP-155 has no constant for, e.g. CK+'s
    ``contempt``) -> the model's own name, lower case, so that no information is made up or lost
    (REP-155 states that its list is not closed). ``unknown`` -> NO_EXPRESSION.
    """
    name = str(label).strip().lower()
    if name == UNKNOWN_LABEL or not name:
        return NO_EXPRESSION
    canonical = canonical_label(name)
    if canonical in REP155_EXPRESSION_OF:
        return REP155_EXPRESSION_OF[canonical]
    return name


# --- face ids ------------------------------------------------------------------------------------------

_ID_ALPHABET = string.ascii_lowercase + string.digits


class FaceIds:
    """REP-155 face ids of tracks: ``f<5 random characters>_<n>``.

    The random part is drawn once per FaceIds (i.e. per node start: 36^5 ~ 6e7 values), the counter
    counts every new track, so an id is never given twice in one run and practically never across
    restarts (a consumer that remembers ids cannot take a new person for an old one). The id of a
    track stays the same while it is tracked. Ids are valid ROS topic name tokens (a letter first).
    """

    def __init__(self, session: str | None = None) -> None:
        self.session = session if session is not None else "".join(secrets.choice(_ID_ALPHABET) for _ in range(5))
        self._ids: dict[Hashable, str] = {}
        self._count = 0

    def id_for(self, track: Hashable) -> str:
        face_id = self._ids.get(track)
        if face_id is None:
            self._count += 1
            face_id = self._ids[track] = f"f{self.session}_{self._count}"
        return face_id

    def forget(self, tracks: Iterable[Hashable]) -> list[str]:
        """Drop ended tracks; returns their ids (whose topics are torn down)."""
        return [i for i in (self._ids.pop(t, None) for t in tracks) if i is not None]

    def active(self) -> dict[Hashable, str]:
        return dict(self._ids)


# --- face images and regions ----------------------------------------------------------------------------


def normalized_roi(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of a pixel box (x, y, w, h), normalised by the image size, clipped to 0..1."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    x, y, w, h = (float(v) for v in box)

    def clip(v: float) -> float:
        return min(max(v, 0.0), 1.0)

    return clip(x / width), clip(y / height), clip((x + w) / width), clip((y + h) / height)


@dataclass(frozen=True)
class Letterbox:
    """Where a face box lands in a REP-155 face image: scaled by ``scale`` to fit (aspect kept) and
    centred; ``x, y, w, h`` is the (integer) content rectangle, the rest is black."""

    x: int
    y: int
    w: int
    h: int
    scale: float

    @classmethod
    def fit(cls, box_w: float, box_h: float, out_w: int, out_h: int) -> "Letterbox":
        if box_w <= 0 or box_h <= 0:
            raise ValueError(f"empty face box {box_w} x {box_h}")
        scale = min(out_w / box_w, out_h / box_h)
        w = max(1, min(out_w, int(round(box_w * scale))))
        h = max(1, min(out_h, int(round(box_h * scale))))
        return cls((out_w - w) // 2, (out_h - h) // 2, w, h, scale)


def letterboxed_crop(bgr: np.ndarray, box: Sequence[float], out_w: int, out_h: int) -> np.ndarray:
    """REP-155 ``cropped``: the box (x, y, w, h px, clipped to the frame) scaled to fit ``out_w`` x
    ``out_h`` with its aspect kept, centred on black (hri_face_detect's layout)."""
    height, width = bgr.shape[:2]
    x0, y0 = int(max(math.floor(box[0]), 0)), int(max(math.floor(box[1]), 0))
    x1, y1 = int(min(math.ceil(box[0] + box[2]), width)), int(min(math.ceil(box[1] + box[3]), height))
    out = np.zeros((out_h, out_w) + bgr.shape[2:], np.uint8)
    if x1 <= x0 or y1 <= y0:
        return out
    fit = Letterbox.fit(x1 - x0, y1 - y0, out_w, out_h)
    region = bgr[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if fit.scale < 1.0 else cv2.INTER_LINEAR
    out[fit.y:fit.y + fit.h, fit.x:fit.x + fit.w] = cv2.resize(region, (fit.w, fit.h), interpolation=interp)
    return out


def aligned_face_image(bgr: np.ndarray, box: Sequence[float], keypoints: Any, out_w: int, out_h: int,
                       keypoints_model: str | None = "short") -> np.ndarray:
    """REP-155 ``aligned`` as this node makes it: the model's own alignment (the template of the
    network that placed ``keypoints``, grey), drawn at ``out_w`` x ``out_h``."""
    size = max(out_w, out_h)
    ratios, template = alignment_for(keypoints_model)
    crop = align_face(bgr, box, keypoints, size=size, box_eye_ratios=ratios, template=template)
    if (out_w, out_h) != (size, size):
        crop = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA)
    return crop


# --- REP-155 in: re-alignment ---------------------------------------------------------------------------

#: hri_msgs/FacialLandmarks indices (OpenPose/dlib convention; "right" = the subject's right).
RIGHT_PUPIL, LEFT_PUPIL = 68, 69
RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS = (36, 39), (42, 45)


def eyes_from_landmarks(points: Sequence[Sequence[float]]):
    """(subject's right eye, left eye) as normalised (x, y) from a FacialLandmarks point list
    [(x, y, c), ...] (70 points), or None when neither the pupils nor the eye corners are given
    (a detector leaves unfilled points at 0, 0 with c = 0)."""

    def given(i: int) -> bool:
        if i >= len(points):
            return False
        x, y, c = (float(v) for v in points[i][:3])
        return all(math.isfinite(v) for v in (x, y)) and (c > 0.0 or x > 0.0 or y > 0.0)

    if given(RIGHT_PUPIL) and given(LEFT_PUPIL):
        return tuple(points[RIGHT_PUPIL][:2]), tuple(points[LEFT_PUPIL][:2])
    if all(given(i) for i in RIGHT_EYE_CORNERS + LEFT_EYE_CORNERS):
        def mid(a: int, b: int) -> tuple[float, float]:
            return ((points[a][0] + points[b][0]) / 2, (points[a][1] + points[b][1]) / 2)

        return mid(*RIGHT_EYE_CORNERS), mid(*LEFT_EYE_CORNERS)
    return None


def content_rectangle(cropped: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the non-black part of a letterboxed face image (its whole area if all black)."""
    grey = cropped if cropped.ndim == 2 else cropped.max(axis=2)
    rows = np.flatnonzero(grey.max(axis=1) > 0)
    cols = np.flatnonzero(grey.max(axis=0) > 0)
    if rows.size == 0 or cols.size == 0:
        return 0, 0, cropped.shape[1], cropped.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def realign_rep155(cropped: np.ndarray, roi: Sequence[float], eyes=None, box_aspect: float | None = None,
                   *, box_eye_ratios: tuple[float, float] = BLAZEFACE_BOX_EYE_RATIOS) -> np.ndarray:
    """A 48 x 48 uint8 grey face framed like FER2013, from another detector's REP-155 face topics.

    ``cropped``: its ``/cropped`` image (H x W [x 3] uint8): the roi's region scaled to fit and
    centred (REP-155, hri_face_detect). ``roi``: normalised (xmin, ymin, xmax, ymax) of the face in
    the source image. ``eyes``: (subject's right eye, left eye) normalised source coordinates
    (eyes_from_landmarks), or None to estimate them from the box. ``box_aspect``: the box's width
    / height in source pixels (from FacialLandmarks' image width/height); None = read from the
    crop's non-black content (the letterbox).
    Only the crop's content is used, so the black letterbox bars never enter the face: like the
    node's own alignment at a frame edge, pixels beyond it replicate the border.
    """
    if not isinstance(cropped, np.ndarray) or cropped.dtype != np.uint8 or cropped.ndim not in (2, 3) \
            or cropped.shape[0] < 2 or cropped.shape[1] < 2:
        raise ValueError(f"cropped must be a uint8 H x W [x 3] image, got "
                         f"{getattr(cropped, 'dtype', type(cropped))} {getattr(cropped, 'shape', '')}")
    xmin, ymin, xmax, ymax = (float(v) for v in roi)
    bw, bh = xmax - xmin, ymax - ymin
    if not (bw > 0 and bh > 0 and all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax))):
        raise ValueError(f"empty or invalid roi {tuple(roi)}")
    out_h, out_w = cropped.shape[:2]
    if box_aspect is not None and math.isfinite(box_aspect) and box_aspect > 0:
        fit = Letterbox.fit(box_aspect, 1.0, out_w, out_h)
        cx, cy, cw, ch = fit.x, fit.y, fit.w, fit.h
    else:
        cx, cy, cw, ch = content_rectangle(cropped)
    content = cropped[cy:cy + ch, cx:cx + cw]
    keypoints = None
    if eyes is not None:
        keypoints = np.array([[(e[0] - xmin) / bw * cw, (e[1] - ymin) / bh * ch] for e in eyes], np.float64)
    return align_face(np.ascontiguousarray(content), (0.0, 0.0, float(cw), float(ch)), keypoints,
                      size=FACE_SIZE, box_eye_ratios=box_eye_ratios)


def realign_face_topics(cropped: np.ndarray, roi: Sequence[float], points: Sequence[Sequence[float]] | None,
                        image_width: int = 0, image_height: int = 0) -> np.ndarray:
    """realign_rep155 from what one face's topics carry: ``cropped`` image, normalised ``roi``
    (xmin, ymin, xmax, ymax), FacialLandmarks ``points`` [(x, y, c)] * 70 or None, and that
    message's image ``width``/``height`` (0 = unknown: the box aspect is read from the crop)."""
    eyes = eyes_from_landmarks(points) if points is not None else None
    aspect = None
    xmin, ymin, xmax, ymax = (float(v) for v in roi)
    if image_width > 0 and image_height > 0 and ymax > ymin:
        aspect = (xmax - xmin) * image_width / ((ymax - ymin) * image_height)
    return realign_rep155(cropped, roi, eyes, aspect)


# --- REP-155 in: grouping one frame's faces ---------------------------------------------------------------

#: The per-face parts a group needs before its faces can be classified (landmarks too, for faces
#: whose detector has sent them before: see StampGrouper).
REQUIRED_PARTS = ("roi", "cropped")


@dataclass
class FrameGroup:
    """The faces of one source frame (one stamp). ``faces``: id -> {part name: message}."""

    stamp: int  # nanoseconds
    first_seen: float  # monotonic seconds of its first message
    faces: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracked: tuple[str, ...] | None = None  # the detector's tracked list for this stamp, once it came
    expired: bool = False  # emitted by the deadline, not complete

    def ready_faces(self) -> dict[str, dict[str, Any]]:
        """The faces that have every required part."""
        return {i: p for i, p in self.faces.items() if all(k in p for k in REQUIRED_PARTS)}


class StampGrouper:
    """Groups REP-155 face messages that arrive on separate topics into frames, by header stamp.

    A frame is emitted (once) when the detector's ``tracked`` list for its stamp has come and every
    listed face has its roi and cropped image (and landmarks, if that face sent landmarks before),
    or at the latest ``max_wait`` seconds after its first message (then with the faces that are
    complete; hri_face_detect keeps a briefly lost face in ``tracked`` without publishing its
    images, so such frames go at the deadline). Frames are emitted oldest first; a message for a
    stamp older than the newest emitted frame is late and is counted, not grouped. At most
    ``max_pending`` frames wait (the oldest goes first), so a detector that never completes a frame
    cannot grow memory. Not thread-safe: call it from one thread (or under a lock).
    """

    def __init__(self, max_wait: float, max_pending: int = 8) -> None:
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        self.max_wait = float(max_wait)
        self.max_pending = max(1, int(max_pending))
        self._pending: dict[int, FrameGroup] = {}
        self._last_emitted: int | None = None
        self._with_landmarks: set[str] = set()
        self.late = 0  # messages for frames already emitted

    def _group(self, stamp: int, now: float) -> FrameGroup | None:
        if self._last_emitted is not None and stamp <= self._last_emitted:
            self.late += 1
            return None
        group = self._pending.get(stamp)
        if group is None:
            group = self._pending[stamp] = FrameGroup(stamp, now)
        return group

    def add_part(self, stamp: int, face_id: str, part: str, value: Any, now: float) -> None:
        """One per-face message (part: roi, landmarks or cropped)."""
        group = self._group(stamp, now)
        if group is None:
            return
        group.faces.setdefault(face_id, {})[part] = value
        if part == "landmarks":
            self._with_landmarks.add(face_id)

    def add_tracked(self, stamp: int, ids: Sequence[str], now: float) -> None:
        group = self._group(stamp, now)
        if group is not None:
            group.tracked = tuple(ids)

    def forget(self, face_ids: Iterable[str]) -> None:
        """Faces that left ``tracked``: no longer expected to send landmarks."""
        self._with_landmarks.difference_update(face_ids)

    def _complete(self, group: FrameGroup) -> bool:
        if group.tracked is None:
            return False
        for face_id in group.tracked:
            parts = group.faces.get(face_id, {})
            if not all(k in parts for k in REQUIRED_PARTS):
                return False
            if face_id in self._with_landmarks and "landmarks" not in parts:
                return False
        return True

    def pop_ready(self, now: float) -> list[FrameGroup]:
        """Frames to classify now, oldest first. A complete frame also releases older incomplete
        ones (their faces will not come any more once a newer frame is complete)."""
        stamps = sorted(self._pending)
        cut = None
        for i, s in enumerate(stamps):
            g = self._pending[s]
            if self._complete(g) or now - g.first_seen >= self.max_wait:
                cut = i
        overflow = len(stamps) - self.max_pending
        if overflow > 0:
            cut = max(cut if cut is not None else -1, overflow - 1)
        if cut is None:
            return []
        out = []
        for s in stamps[:cut + 1]:
            g = self._pending.pop(s)
            g.expired = not self._complete(g)
            out.append(g)
        self._last_emitted = stamps[cut]
        return out

    def next_deadline(self) -> float | None:
        """Monotonic time at which the oldest waiting frame expires (None when none waits)."""
        if not self._pending:
            return None
        return min(g.first_seen for g in self._pending.values()) + self.max_wait

    def pending(self) -> int:
        return len(self._pending)


def stamp_ns(sec: int, nanosec: int) -> int:
    return int(sec) * 1_000_000_000 + int(nanosec)
