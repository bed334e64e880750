"""Face tracking across frames: stable track ids from box overlap (IoU) and centre distance.

Pure Python + NumPy (no rclpy), so it is unit-tested on synthetic sequences.

Each frame, :meth:`FaceTracker.update` gets the face boxes found in that frame and returns one track
id per box. A box continues the track it overlaps best (IoU with the track's *predicted* box, i.e.
its last box moved by its recent velocity, which keeps ids of two faces that cross apart as long as
the boxes tell them apart); a box that overlaps no track but whose centre lies close to a track's
predicted centre (and has a similar size) continues that track too, which covers fast motion. A
track that finds no box is kept for ``max_missed`` frames (so a face missed by the detector in one
frame keeps its id) and then dropped; ids are never reused.

:func:`select_faces` applies the minimum face size and the maximum number of faces per frame
(largest first) before tracking.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

Box = tuple[float, float, float, float]  # x, y, w, h (top-left corner, pixels)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes; 0 when either is empty."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    if aw <= 0 or ah <= 0 or bw <= 0 or bh <= 0:
        return 0.0
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return float(inter / union) if union > 0 else 0.0


def iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """IoU of every box of ``a`` (rows) with every box of ``b`` (columns)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    A = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    B = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax1, ay1 = A[:, 0:1], A[:, 1:2]
    ax2, ay2 = ax1 + A[:, 2:3], ay1 + A[:, 3:4]
    bx1, by1 = B[:, 0], B[:, 1]
    bx2, by2 = bx1 + B[:, 2], by1 + B[:, 3]
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0.0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0.0, None)
    inter = iw * ih
    area_a = np.clip(A[:, 2:3], 0, None) * np.clip(A[:, 3:4], 0, None)
    area_b = np.clip(B[:, 2], 0, None) * np.clip(B[:, 3], 0, None)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


def select_faces(boxes: Sequence[Box], min_size: int = 0, max_faces: int = 0) -> list[int]:
    """Indices of the boxes to keep: at least ``min_size`` pixels on their shorter side, at most
    ``max_faces`` of them (0 = no limit), largest area first; ties keep detection order."""
    keep = [i for i, (_, _, w, h) in enumerate(boxes) if min(w, h) >= min_size]
    keep.sort(key=lambda i: -(boxes[i][2] * boxes[i][3]))
    if max_faces > 0:
        keep = keep[:max_faces]
    return keep


@dataclass
class Track:
    """One followed face."""

    track_id: int
    box: Box
    velocity: tuple[float, float] = (0.0, 0.0)  # px per frame of the box centre, smoothed
    missed: int = 0  # consecutive frames without a matching box
    hits: int = 1  # frames with a matching box
    age: int = 1  # frames since the track started

    def predicted(self) -> Box:
        """Where the box is expected in the next frame (constant velocity since the last hit)."""
        x, y, w, h = self.box
        steps = self.missed + 1
        return (x + self.velocity[0] * steps, y + self.velocity[1] * steps, w, h)


@dataclass
class TrackerUpdate:
    """Result of one :meth:`FaceTracker.update`."""

    ids: list[int]  # one track id per input box, in input order
    new_ids: list[int] = field(default_factory=list)  # tracks started this frame
    removed_ids: list[int] = field(default_factory=list)  # tracks dropped this frame


class FaceTracker:
    """Greedy IoU / centre-distance tracker with constant-velocity prediction.

    iou_threshold: minimum IoU between a box and a track's predicted box to continue the track.
    max_missed: frames a track survives without a matching box (0 = dropped at the first miss).
    (Both are fer_node parameters; their defaults live in config/fer.yaml: see from_params.)
    centre_gate: a box that overlaps no track still continues the nearest track whose predicted
        centre is within ``centre_gate`` x (track size) of the box's centre, if the sizes differ by
        less than a factor of 2. 0 disables this fallback.
    velocity_smoothing: weight of the newest displacement in the velocity estimate (0 = no
        prediction).
    """

    def __init__(
        self,
        *,
        iou_threshold: float,
        max_missed: int,
        centre_gate: float = 0.5,
        velocity_smoothing: float = 0.5,
    ) -> None:
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.centre_gate = float(centre_gate)
        self.velocity_smoothing = float(velocity_smoothing)
        self._tracks: list[Track] = []
        self._next_id = itertools.count(1)

    @classmethod
    def from_params(cls, values) -> "FaceTracker":
        """From fer_node parameter values (track_iou_threshold, track_max_missed; defaults in
        config/fer.yaml)."""
        return cls(iou_threshold=values["track_iou_threshold"], max_missed=values["track_max_missed"])

    @property
    def tracks(self) -> list[Track]:
        return list(self._tracks)

    def reset(self) -> list[int]:
        """Forget every track (ids keep counting up); returns the dropped ids."""
        dropped = [t.track_id for t in self._tracks]
        self._tracks = []
        return dropped

    def update(self, boxes: Iterable[Box]) -> TrackerUpdate:
        boxes = [tuple(float(v) for v in b) for b in boxes]
        predicted = [t.predicted() for t in self._tracks]
        assignment: dict[int, int] = {}  # box index -> track index
        free_tracks = set(range(len(self._tracks)))
        free_boxes = set(range(len(boxes)))

        # 1. IoU with the predicted boxes, best pairs first.
        if predicted and boxes:
            m = iou_matrix(predicted, boxes)
            pairs = sorted(
                ((m[t, b], t, b) for t in range(len(predicted)) for b in range(len(boxes))
                 if m[t, b] >= self.iou_threshold and m[t, b] > 0.0),
                key=lambda p: (-p[0], p[1], p[2]),
            )
            for _, t, b in pairs:
                if t in free_tracks and b in free_boxes:
                    assignment[b] = t
                    free_tracks.discard(t)
                    free_boxes.discard(b)

        # 2. Centre distance for what is left (fast motion, jittery boxes).
        if self.centre_gate > 0 and free_tracks and free_boxes:
            pairs = []
            for t in free_tracks:
                px, py, pw, ph = predicted[t]
                size = max(pw, ph, 1.0)
                for b in free_boxes:
                    bx, by, bw, bh = boxes[b]
                    ratio = max(bw * bh, 1e-9) / max(pw * ph, 1e-9)
                    if not 0.5 <= ratio <= 2.0:
                        continue
                    d = np.hypot((bx + bw / 2) - (px + pw / 2), (by + bh / 2) - (py + ph / 2)) / size
                    if d <= self.centre_gate:
                        pairs.append((d, t, b))
            for _, t, b in sorted(pairs):
                if t in free_tracks and b in free_boxes:
                    assignment[b] = t
                    free_tracks.discard(t)
                    free_boxes.discard(b)

        # 3. Update matched tracks, age the unmatched ones, start new ones.
        a = self.velocity_smoothing
        for b, t in assignment.items():
            track = self._tracks[t]
            ox, oy, ow, oh = track.box
            nx, ny, nw, nh = boxes[b]
            steps = track.missed + 1
            dx = ((nx + nw / 2) - (ox + ow / 2)) / steps
            dy = ((ny + nh / 2) - (oy + oh / 2)) / steps
            if a <= 0.0:
                track.velocity = (0.0, 0.0)
            elif track.hits == 1:  # first displacement: nothing to average with yet
                track.velocity = (dx, dy)
            else:
                track.velocity = (
                    (1 - a) * track.velocity[0] + a * dx,
                    (1 - a) * track.velocity[1] + a * dy,
                )
            track.box = boxes[b]
            track.missed = 0
            track.hits += 1
            track.age += 1

        removed: list[int] = []
        survivors: list[Track] = []
        for t, track in enumerate(self._tracks):
            if t in free_tracks:
                track.missed += 1
                track.age += 1
                if track.missed > self.max_missed:
                    removed.append(track.track_id)
                    continue
            survivors.append(track)

        ids: list[int] = [0] * len(boxes)
        for b, t in assignment.items():
            ids[b] = self._tracks[t].track_id
        new_ids: list[int] = []
        for b in sorted(free_boxes):
            track = Track(track_id=next(self._next_id), box=boxes[b])
            survivors.append(track)
            ids[b] = track.track_id
            new_ids.append(track.track_id)
        self._tracks = survivors
        return TrackerUpdate(ids=ids, new_ids=new_ids, removed_ids=removed)
