"""BlazeFace (MediaPipe's short-range face detector) on the project's own inference runtimes.

The network (fer_perception/models/blazeface_short_range.onnx, made from MediaPipe 0.10.21's
face_detection_short_range.tflite by tools/make_blazeface_onnx.py; Apache-2.0, see
models/blazeface_NOTICE) runs on ONNX Runtime, TensorRT or LiteRT like the emotion model.
Everything around it is implemented here, following MediaPipe's face_detection_short_range
graph options:

* input: the frame letterboxed (aspect ratio kept, centred, black borders) to 128 x 128 RGB,
  scaled to [-1, 1];
* 896 SSD anchors: strides 8, 16, 16, 16 with 2 anchors per layer, layers of one stride merged
  -> 16 x 16 cells x 2 + 8 x 8 cells x 6; fixed anchor size 1, centre offset 0.5;
* decoding: ``regressors`` [N, 896, 16] = box centre x/y, width, height, then 6 keypoints x/y, all
  divided by 128 and added to the anchor centre (sizes times anchor size 1);
* scores: sigmoid of the raw ``classificators`` clipped to +-100, kept when >= ``score_threshold``
  (0.5);
* weighted non-maximum suppression at IoU 0.3: each kept detection is the score-weighted mean of
  the boxes/keypoints it suppresses, with the top score.

Keypoints (``fer_perception.detection.KEYPOINT_NAMES``): right eye, left eye, nose tip, mouth
centre, right ear tragion, left ear tragion - "right" is the SUBJECT's right, which appears on the
image's left in an unmirrored camera image.

Range: the short-range model is made for faces within ~2 m of a phone camera, i.e. faces at least
~1/8 of the frame's longer side (the smallest anchors are 0.15 x 128 px). For frames with smaller
faces pass ``tiles=(cols, rows)``: the frame is also cut into cols x rows overlapping tiles, and all
tiles plus the whole frame run as ONE batch (cost grows ~linearly with the number of images).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_perception.detection import Detection
from fer_perception.errors import DetectorError

MODEL_DIR = Path(__file__).resolve().parent / "models"
BLAZEFACE_ONNX_PATH = MODEL_DIR / "blazeface_short_range.onnx"
BLAZEFACE_TFLITE_PATH = MODEL_DIR / "blazeface_short_range.tflite"
BLAZEFACE_FULL_ONNX_PATH = MODEL_DIR / "blazeface_full_range.onnx"
BLAZEFACE_FULL_TFLITE_PATH = MODEL_DIR / "blazeface_full_range.tflite"

INPUT_SIZE = 128
NUM_ANCHORS = 896
NUM_KEYPOINTS = 6
COORD_SCALE = 128.0
SCORE_CLIP = 100.0
DEFAULT_SCORE_THRESHOLD = 0.5
DEFAULT_IOU_THRESHOLD = 0.3


def ssd_anchors(
    input_size: int = INPUT_SIZE,
    strides: tuple[int, ...] = (8, 16, 16, 16),
    anchors_per_layer: int = 2,
    offset: float = 0.5,
) -> np.ndarray:
    """MediaPipe SsdAnchorsCalculator with fixed_anchor_size: (num_anchors, 2) centres in 0..1.

    Consecutive layers with the same stride share one feature map, so their anchors are emitted
    together per cell (aspect ratio 1.0 + one interpolated scale each -> 2 per layer).
    """
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer < len(strides) and strides[layer] == stride:
            same += 1
            layer += 1
        fm = int(np.ceil(input_size / stride))
        ys, xs = np.meshgrid((np.arange(fm) + offset) / fm, (np.arange(fm) + offset) / fm, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cells, anchors_per_layer * same, axis=0))
    return np.concatenate(centres).astype(np.float32)


ANCHORS = ssd_anchors()
assert ANCHORS.shape == (NUM_ANCHORS, 2)


@dataclass(frozen=True, eq=False)
class BlazeFaceModel:
    """One BlazeFace variant: its files, input side and anchors (MediaPipe's graph options)."""

    name: str
    onnx_path: Path
    tflite_path: Path
    input_size: int
    anchors: np.ndarray

    @property
    def num_anchors(self) -> int:
        return len(self.anchors)


#: short: face_detection_short_range (128 px, 896 anchors, faces >= ~1/8 of the view's long side);
#: full: face_detection_full_range (192 px, one anchor per cell of a 48 x 48 grid = 2304, trained
#: for faces up to ~5 m: down to ~1/20 of the view's long side, measured in docs/BENCHMARKS.md).
MODELS = {
    "short": BlazeFaceModel("short", BLAZEFACE_ONNX_PATH, BLAZEFACE_TFLITE_PATH, 128, ANCHORS),
    "full": BlazeFaceModel("full", BLAZEFACE_FULL_ONNX_PATH, BLAZEFACE_FULL_TFLITE_PATH, 192,
                           ssd_anchors(192, strides=(4,), anchors_per_layer=1)),
}


def decode(regressors: np.ndarray, classificators: np.ndarray, score_threshold: float,
           anchors: np.ndarray = ANCHORS, coord_scale: float = COORD_SCALE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw outputs -> (boxes [M,4] xmin,ymin,xmax,ymax, scores [M], keypoints [M,6,2]),
    all in the input square's normalised 0..1 coordinates (``coord_scale`` = its side in px), only
    for scores >= threshold."""
    raw = classificators.reshape(-1)
    # sigmoid(clip(raw)) >= t  <=>  raw >= logit(t) (|logit(t)| < 100): threshold the raw scores,
    # then clip and exponentiate only the few kept ones.
    t = min(max(score_threshold, 1e-7), 1 - 1e-7)
    keep = np.flatnonzero(raw >= math.log(t / (1 - t)))
    if keep.size == 0:
        return np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty((0, NUM_KEYPOINTS, 2), np.float32)
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw[keep], -SCORE_CLIP, SCORE_CLIP)))
    reg = regressors.reshape(len(anchors), 16)[keep] / coord_scale
    centre = anchors[keep]
    cx = reg[:, 0] + centre[:, 0]
    cy = reg[:, 1] + centre[:, 1]
    half_w = reg[:, 2] * 0.5
    half_h = reg[:, 3] * 0.5
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    kps = reg[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + centre[:, None, :]
    return boxes.astype(np.float32), scores.astype(np.float32), kps.astype(np.float32)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xmin,ymin,xmax,ymax box with each of ``boxes``."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray,
                 iou_threshold: float = DEFAULT_IOU_THRESHOLD, return_top: bool = False):
    """MediaPipe's WEIGHTED non-max suppression. Returns (boxes, scores, keypoints), best first, and
    with ``return_top`` the index of each result's top-scoring input."""
    order = np.argsort(-scores, kind="stable")
    out_b, out_s, out_k, out_top = [], [], [], []
    while order.size:
        top = order[0]
        overlap = iou(boxes[top], boxes[order])
        group = order[overlap > iou_threshold]
        if group.size == 0:  # degenerate (zero-area) top box: keep it alone
            group = order[:1]
        w = scores[group][:, None]
        total = float(w.sum())
        out_b.append((boxes[group] * w).sum(axis=0) / total)
        out_k.append((keypoints[group].reshape(group.size, -1) * w).sum(axis=0).reshape(NUM_KEYPOINTS, 2) / total)
        out_s.append(scores[top])
        out_top.append(top)
        order = order[(overlap <= iou_threshold) & (order != top)]
    if not out_b:
        result = boxes[:0], scores[:0], keypoints[:0]
    else:
        result = np.array(out_b, np.float32), np.array(out_s, np.float32), np.array(out_k, np.float32)
    return (*result, np.array(out_top, np.int64)) if return_top else result


class _Letterbox:
    """Geometry of one letterboxed view: the image region (x0, y0, w, h) it covers, its scale into
    the ``side`` square and its centring offsets."""

    __slots__ = ("x0", "y0", "w", "h", "scale", "new_w", "new_h", "pad_x", "pad_y", "inner", "overlap")

    def __init__(self, x0: int, y0: int, w: int, h: int, side: int = INPUT_SIZE, inner: bool = False,
                 overlap: tuple[float, float] = (0.0, 0.0)):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.scale = side / max(w, h)
        self.new_w = max(1, min(side, int(round(w * self.scale))))
        self.new_h = max(1, min(side, int(round(h * self.scale))))
        self.pad_x = (side - self.new_w) // 2
        self.pad_y = (side - self.new_h) // 2
        self.inner = inner  # a part of the frame (tile or track region): its inner borders cut faces
        # (x, y) px shared with the neighbour tiles: a face cut by an inner border and no larger than
        # this is seen whole by a neighbour; a larger one may be seen whole nowhere at this level
        self.overlap = overlap


def tile_regions(width: int, height: int, cols: int, rows: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """cols x rows tiles (x0, y0, w, h) covering the frame, neighbours overlapping by ``overlap``."""
    tw = int(np.ceil(width / (cols - (cols - 1) * overlap)))
    th = int(np.ceil(height / (rows - (rows - 1) * overlap)))
    regions = []
    for r in range(rows):
        for c in range(cols):
            x0 = 0 if cols == 1 else int(round(c * (width - tw) / (cols - 1)))
            y0 = 0 if rows == 1 else int(round(r * (height - th) / (rows - 1)))
            regions.append((x0, y0, min(tw, width), min(th, height)))
    return regions


def pyramid_regions(width: int, height: int, levels, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """The tiles of every pyramid level ((cols, rows) each, coarse to fine), in order."""
    regions: list[tuple[int, int, int, int]] = []
    for cols, rows in levels:
        regions += tile_regions(width, height, cols, rows, overlap)
    return regions


def tile_overlaps(width: int, height: int, levels, overlap: float = 0.25) -> dict:
    """{tile region: (x, y) px it shares with its neighbours} for every pyramid level."""
    out = {}
    for cols, rows in levels:
        regions = tile_regions(width, height, cols, rows, overlap)
        tw, th = regions[0][2], regions[0][3]
        step_x = regions[1][0] - regions[0][0] if cols > 1 else tw
        step_y = regions[cols][1] - regions[0][1] if rows > 1 else th
        for r in regions:
            out[r] = (float(tw - step_x), float(th - step_y))
    return out


def region_around(box, width: int, height: int, factor: float, min_side: int) -> tuple[int, int, int, int]:
    """A square region ``factor`` x the box's longer side (at least ``min_side``) centred on the
    box, shifted to lie inside the frame (and cut to it where the frame is smaller)."""
    x, y, w, h = box
    side = int(round(max(factor * max(w, h), min_side)))
    side = min(side, width, height) if side > min(width, height) else side
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), max(width - side, 0))))
    y0 = int(round(min(max(cy - side / 2, 0), max(height - side, 0))))
    return x0, y0, min(side, width - x0), min(side, height - y0)


def _parse_levels(tiles) -> tuple[tuple[int, int], ...]:
    """None | (cols, rows) | [(cols, rows), ...] -> levels; each level needs at least 2 tiles."""
    if tiles is None:
        return ()
    items = list(tiles)
    if len(items) == 2 and all(isinstance(v, (int, np.integer)) for v in items):
        items = [tuple(items)]
    levels = []
    for item in items:
        try:
            cols, rows = (int(v) for v in item)
        except (TypeError, ValueError):
            raise DetectorError(f"tiles must be (cols, rows) or a list of them, got {tiles!r}") from None
        if cols < 1 or rows < 1 or (cols, rows) == (1, 1):
            raise DetectorError(f"tiles must be (cols, rows) with at least 2 tiles, got {(cols, rows)}")
        levels.append((cols, rows))
    return tuple(levels)


def contained_mask(boxes: np.ndarray, threshold: float = 0.6) -> np.ndarray:
    """Which boxes (best first) to keep: False where a box lies more than ``threshold`` inside a
    better one (see :func:`suppress_contained`)."""
    keep = np.ones(len(boxes), bool)
    for i in range(len(boxes)):  # boxes are best first (weighted_nms)
        if not keep[i]:
            continue
        b = boxes[i]
        later = np.flatnonzero(keep)
        later = later[later > i]
        if later.size == 0:
            break
        ix = np.clip(np.minimum(b[2], boxes[later, 2]) - np.maximum(b[0], boxes[later, 0]), 0, None)
        iy = np.clip(np.minimum(b[3], boxes[later, 3]) - np.maximum(b[1], boxes[later, 1]), 0, None)
        own = np.maximum((boxes[later, 2] - boxes[later, 0]) * (boxes[later, 3] - boxes[later, 1]), 1e-9)
        keep[later[(ix * iy) / own > threshold]] = False
    return keep


def suppress_contained(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, threshold: float = 0.6):
    """Drop a box when more than ``threshold`` of its area lies inside a better-scored box: a face
    half seen at a tile's edge, or seen at two scales with boxes too different for the IoU test.
    ``boxes`` etc. best first (as :func:`weighted_nms` returns them)."""
    keep = contained_mask(boxes, threshold)
    return boxes[keep], scores[keep], keypoints[keep]


class _Net:
    """One BlazeFace network on one runtime: fills letterboxed views, runs them as one batch and
    decodes each view's detections into frame pixels."""

    def __init__(self, spec: BlazeFaceModel, backend: str, model_path, threads, precision: str, batch: int,
                 interpolation: int):
        from fer_perception.inference import create_runner, load_with_tensorrt_fallback, resolve_backend_name

        self.spec, self.side, self.interpolation = spec, spec.input_size, interpolation

        def load(concrete: str, _precision: str):  # the detector runs in the precision it was given
            path = Path(model_path) if model_path is not None else spec.onnx_path
            if concrete == "tflite" and model_path is None:
                path = spec.tflite_path
            return path, create_runner(concrete, path, precision=precision, threads=threads,
                                       max_batch=batch, opt_batch=batch)

        twin = spec.tflite_path if model_path is None else model_path
        path, self.runner = load_with_tensorrt_fallback(backend, resolve_backend_name(backend, twin), precision,
                                                        twin, load, "BlazeFace")
        if tuple(self.runner.input_shape[1:]) != (self.side, self.side, 3):
            raise DetectorError(f"{path}: input shape {self.runner.input_shape} is not N x {self.side} x {self.side} x 3")
        names = list(self.runner.output_names)
        shapes = [tuple(s) for s in self.runner.output_shapes]
        if "regressors" in names and "classificators" in names:
            self.reg_index, self.cls_index = names.index("regressors"), names.index("classificators")
        elif len(shapes) == 2 and sorted(s[-1] for s in shapes) == [1, 16]:
            # MediaPipe's full-range .tflite names its outputs Identity / Identity_1: tell them apart by shape
            self.reg_index = [s[-1] for s in shapes].index(16)
            self.cls_index = 1 - self.reg_index
        else:
            raise DetectorError(f"{path}: outputs {names} lack 'regressors'/'classificators'")
        self.buffer = np.empty((batch, self.side, self.side, 3), np.float32)

    def fill(self, bgr: np.ndarray, views: list[_Letterbox]) -> np.ndarray:
        if len(views) > len(self.buffer):
            self.buffer = np.empty((len(views), self.side, self.side, 3), np.float32)
        buffer = self.buffer[: len(views)]
        for i, v in enumerate(views):
            src = bgr[v.y0 : v.y0 + v.h, v.x0 : v.x0 + v.w]
            small = cv2.resize(src, (v.new_w, v.new_h), interpolation=self.interpolation)
            # cv2's SIMD channel swap, then one multiply into the letterbox buffer (a reversed-
            # channel NumPy view instead costs ~10x more: 0.2 ms vs 17 us at 128 x 96).
            rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
            if v.new_w < self.side or v.new_h < self.side:
                buffer[i].fill(-1.0)  # letterbox borders: black, i.e. -1 after scaling
            region = buffer[i, v.pad_y : v.pad_y + v.new_h, v.pad_x : v.pad_x + v.new_w]
            np.multiply(rgb, np.float32(2.0 / 255.0), out=region, casting="unsafe")
            region -= np.float32(1.0)
        return buffer

    def detect_views(self, bgr: np.ndarray, views: list[_Letterbox], thresholds: list[float]):
        """Per view: (boxes xmin,ymin,xmax,ymax, scores, keypoints) in frame pixels."""
        outputs = self.runner.run(self.fill(bgr, views))
        reg, cls = outputs[self.reg_index], outputs[self.cls_index]
        side = self.side
        out = []
        for i, v in enumerate(views):
            b, s, k = decode(reg[i], cls[i], thresholds[i], self.spec.anchors, float(side))
            if s.size:
                # Undo the letterbox: 0..1 of the input square -> pixels of the full frame.
                b = (b * side - np.array([v.pad_x, v.pad_y, v.pad_x, v.pad_y], np.float32)) / v.scale
                b += np.array([v.x0, v.y0, v.x0, v.y0], np.float32)
                k = (k * side - np.array([v.pad_x, v.pad_y], np.float32)) / v.scale + np.array([v.x0, v.y0], np.float32)
            out.append((b, s, k))
        return out


class BlazeFaceDetector:
    """BlazeFace detector (short or full range). ``detect(bgr) -> list[Detection]`` (best first).

    Options: ``model`` ('short' | 'full', :data:`MODELS`), ``backend`` ('auto' | 'onnxruntime' |
    'tensorrt' | 'tflite'; auto = TensorRT when present, else LiteRT when installed, else ONNX
    Runtime), ``threads``, ``precision`` (fp32/fp16 on TensorRT), ``score_threshold`` (0.5),
    ``iou_threshold`` (0.3), ``tiles`` (None, (cols, rows), or a pyramid: a list of them, coarse to
    fine; each tile is one more view of the network), ``tile_score_threshold`` (0.65: detections
    from tiles and track regions, which see more false positives - hands, dark backgrounds - than
    the whole frame), ``tile_overlap`` (0.25), ``model_path`` (an .onnx; the tflite backend uses the
    sibling .tflite), ``interpolation`` (cv2 flag of the downscale; INTER_LINEAR, like MediaPipe's
    bilinear sampling).

    Tracking-guided detection (``scan_frames`` > 1): the views (whole frame first, then the tiles)
    are cut into ``scan_frames`` groups and each ``detect`` call runs ONE group, so a full scan is
    spread over that many frames; on every call, each face found in the last ``track_hold`` calls
    also gets a re-detection view: a square ``track_region`` x its size (at least ``1.5 x`` the
    network input) around it, at most ``max_track_regions`` (the smallest faces first: large faces
    are found by the whole-frame view anyway), run on ``track_model`` (None: ``model``; 'short' puts
    them on the cheaper short-range network, which suits a view where the face fills about a third).
    ``reset()`` forgets those faces (a new scene).
    With ``scan_frames`` = 1 (default) every call scans everything and keeps no state.
    """

    name = "blazeface"

    def __init__(
        self,
        *,
        model: str = "short",
        backend: str = "auto",
        model_path: str | os.PathLike | None = None,
        threads: int | None = None,
        precision: str = "fp32",
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        iou_threshold: float = DEFAULT_IOU_THRESHOLD,
        tiles=None,
        tile_overlap: float = 0.25,
        tile_score_threshold: float = 0.65,
        interpolation: int = cv2.INTER_LINEAR,
        scan_frames: int = 1,
        track_region: float = 3.0,
        track_hold: int = 3,
        max_track_regions: int = 4,
        whole_frame_model: str | None = None,
        track_model: str | None = None,
    ):
        if model not in MODELS:
            raise DetectorError(f"unknown BlazeFace model {model!r}; valid: {', '.join(MODELS)}")
        if not 0.0 < score_threshold < 1.0:
            raise DetectorError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if not 0.0 < tile_score_threshold < 1.0:
            raise DetectorError(f"tile_score_threshold must be in (0, 1), got {tile_score_threshold}")
        if not 0.0 < iou_threshold <= 1.0:
            raise DetectorError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if not 0.0 <= tile_overlap < 1.0:
            raise DetectorError(f"tile_overlap must be in [0, 1), got {tile_overlap}")
        if int(scan_frames) < 1 or int(track_hold) < 0 or int(max_track_regions) < 0 or track_region < 1.0:
            raise DetectorError("scan_frames must be >= 1, track_hold and max_track_regions >= 0, "
                                f"track_region >= 1 (got {scan_frames}, {track_hold}, {max_track_regions}, "
                                f"{track_region})")
        self.spec = MODELS[model]
        self.side = self.spec.input_size
        self.levels = _parse_levels(tiles)
        self.tiles = self.levels[0] if len(self.levels) == 1 else (list(self.levels) or None)
        self.tile_overlap = float(tile_overlap)
        self.tile_score_threshold = max(float(tile_score_threshold), float(score_threshold))
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.interpolation = interpolation
        self.scan_frames = int(scan_frames)
        self.track_region = float(track_region)
        self.track_hold = int(track_hold)
        self.max_track_regions = int(max_track_regions) if self.scan_frames > 1 else 0
        for option, name in (("whole_frame_model", whole_frame_model), ("track_model", track_model)):
            if name is not None and name not in MODELS:
                raise DetectorError(f"unknown BlazeFace {option} {name!r}; valid: {', '.join(MODELS)}")
            if name is not None and name != model and model_path is not None:
                raise DetectorError(f"model_path names one network: it cannot be combined with {option}")
        separate_whole = whole_frame_model is not None and whole_frame_model != model
        track_model = track_model or model
        n_views = (0 if separate_whole else 1) + sum(c * r for c, r in self.levels)
        tracks_on_main = self.max_track_regions if track_model == model else 0
        per_call = -(-n_views // self.scan_frames) + tracks_on_main
        batch = max(1, min(n_views + tracks_on_main, per_call))

        self._net = _Net(self.spec, backend, model_path, threads, precision, batch, interpolation)
        self._whole_net: _Net | None = None
        if separate_whole:
            tracks_here = self.max_track_regions if track_model == whole_frame_model else 0
            self._whole_net = _Net(MODELS[whole_frame_model], backend, None, threads, precision, 1 + tracks_here,
                                   interpolation)
        # the network of the re-detection views: one of the two above, or a third (only if there are any)
        if track_model == model or not self.max_track_regions:
            self._track_net = self._net
        elif self._whole_net is not None and track_model == whole_frame_model:
            self._track_net = self._whole_net
        else:
            self._track_net = _Net(MODELS[track_model], backend, None, threads, precision,
                                   max(1, self.max_track_regions), interpolation)
        self._runner = self._net.runner
        self.backend = self._runner.name
        self._geometry_key: tuple[int, int] | None = None
        self._scan: list[list[tuple[int, int, int, int]]] = []
        self._overlaps: dict = {}
        self._phase = 0
        self._memory: list[tuple[tuple[float, float, float, float], int]] = []  # (box, calls since seen)

    def close(self) -> None:
        for net in {id(n): n for n in (self._net, self._whole_net, self._track_net) if n is not None}.values():
            net.runner.close()

    def reset(self) -> None:
        """Forget the faces of previous calls (tracking-guided mode); the scan phase carries on."""
        self._memory = []

    def describe(self) -> dict:
        out = {"detector": self.name, "model": self.spec.name,
               "whole_frame_model": (self._whole_net or self._net).spec.name, "score_threshold": self.score_threshold,
               "iou_threshold": self.iou_threshold, "tiles": self.tiles,
               "tile_score_threshold": self.tile_score_threshold if self.levels else None}
        if self.scan_frames > 1:
            out.update(scan_frames=self.scan_frames, track_region=self.track_region,
                       track_hold=self.track_hold, max_track_regions=self.max_track_regions,
                       track_model=self._track_net.spec.name)
        return {**out, **self._runner.describe()}

    def scan_views(self, width: int, height: int) -> list[list[tuple[int, int, int, int]]]:
        """The scan's regions per call: ``scan_frames`` groups, the whole frame in the first."""
        regions = pyramid_regions(width, height, self.levels, self.tile_overlap)
        if self._whole_net is None:  # else the whole frame runs on its own network on every call
            regions = [(0, 0, width, height)] + regions
        if not regions:
            return [[]]
        groups = max(1, min(self.scan_frames, len(regions)))
        # Round robin over the views: each call's group samples every level, a ~equal cost per call.
        return [regions[g::groups] for g in range(groups)]

    def _views_for_call(self, width: int, height: int) -> list[tuple[_Net, list[_Letterbox]]]:
        """This call's views, grouped by the network that runs them (one batch per network)."""
        if self._geometry_key != (height, width):
            self._scan = self.scan_views(width, height)
            self._overlaps = tile_overlaps(width, height, self.levels, self.tile_overlap)
            self._geometry_key = (height, width)
            self._memory = []
        group = self._scan[self._phase % len(self._scan)]
        self._phase = (self._phase + 1) % len(self._scan)
        scan = [_Letterbox(*r, side=self.side, inner=r != (0, 0, width, height),
                           overlap=self._overlaps.get(r, (0.0, 0.0))) for r in group]
        per_net: dict[int, tuple[_Net, list[_Letterbox]]] = {id(self._net): (self._net, scan)}
        if self._whole_net is not None:
            per_net[id(self._whole_net)] = (self._whole_net, [_Letterbox(0, 0, width, height, side=self._whole_net.side)])
        if self.max_track_regions and self._memory:
            net = self._track_net
            tracks = per_net.setdefault(id(net), (net, []))[1]
            min_side = int(1.5 * net.side)
            for box, _age in sorted(self._memory, key=lambda m: max(m[0][2], m[0][3]))[: self.max_track_regions]:
                r = region_around(box, width, height, self.track_region, min_side)
                if r[2] * r[3] >= 0.5 * width * height:
                    continue  # about the whole frame: the whole-frame view covers it
                # a face cut by a re-detection view's border is another face, seen whole elsewhere
                tracks.append(_Letterbox(*r, side=net.side, inner=True, overlap=(math.inf, math.inf)))
        return [(net, views) for net, views in per_net.values() if views]

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        bgr = _as_bgr(bgr)
        height, width = bgr.shape[:2]
        views, per_view, nets = [], [], []
        for net, net_views in self._views_for_call(width, height):
            thresholds = [self.tile_score_threshold if v.inner else self.score_threshold for v in net_views]
            per_view += net.detect_views(bgr, net_views, thresholds)
            views += net_views
            nets += [net.spec.name] * len(net_views)
        all_b, all_s, all_k, all_m = [], [], [], []
        for v, (b, s, k), net in zip(views, per_view, nets):
            if s.size == 0:
                continue
            if v.inner:
                # A part of the frame sees faces cut by its inner borders; those belong to a neighbour
                # tile when they fit in the overlap (else no tile of this level sees them whole: kept,
                # and merged with a coarser view's box by the NMS below).
                margin = 0.02 * max(v.w, v.h)
                fits_x = (b[:, 2] - b[:, 0]) <= v.overlap[0]
                fits_y = (b[:, 3] - b[:, 1]) <= v.overlap[1]
                cut = np.zeros(len(s), bool)
                if v.x0 > 0:
                    cut |= (b[:, 0] < v.x0 + margin) & fits_x
                if v.y0 > 0:
                    cut |= (b[:, 1] < v.y0 + margin) & fits_y
                if v.x0 + v.w < width:
                    cut |= (b[:, 2] > v.x0 + v.w - margin) & fits_x
                if v.y0 + v.h < height:
                    cut |= (b[:, 3] > v.y0 + v.h - margin) & fits_y
                b, s, k = b[~cut], s[~cut], k[~cut]
            all_b.append(b)
            all_s.append(s)
            all_k.append(k)
            all_m.append(np.full(len(s), net, object))
        result = []
        if all_b:
            boxes, scores, kps, top = weighted_nms(np.concatenate(all_b), np.concatenate(all_s),
                                                   np.concatenate(all_k), self.iou_threshold, return_top=True)
            names = np.concatenate(all_m)[top]
            keep = contained_mask(boxes)
            boxes, scores, kps, names = boxes[keep], scores[keep], kps[keep], names[keep]
            for b, s, k, m in zip(boxes, scores, kps, names):
                x0 = min(max(float(b[0]), 0.0), float(width))
                y0 = min(max(float(b[1]), 0.0), float(height))
                x1 = min(max(float(b[2]), 0.0), float(width))
                y1 = min(max(float(b[3]), 0.0), float(height))
                if x1 - x0 < 1.0 or y1 - y0 < 1.0:
                    continue
                result.append(Detection(box=(x0, y0, x1 - x0, y1 - y0), score=float(s), keypoints=k, model=str(m)))
        if self.max_track_regions:
            self._remember(result)
        return result

    def _remember(self, found: list[Detection]) -> None:
        """Faces of this call, plus those of the last ``track_hold`` calls not found again."""
        kept = [(d.box, 0) for d in found]
        boxes = np.array([[x, y, x + w, y + h] for (x, y, w, h), _ in kept], np.float32).reshape(-1, 4)
        for (x, y, w, h), age in self._memory:
            if age + 1 > self.track_hold:
                continue
            if len(boxes) and iou(np.array([x, y, x + w, y + h], np.float32), boxes).max() > 0.1:
                continue
            kept.append(((x, y, w, h), age + 1))
        self._memory = kept


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise DetectorError(f"detect() needs a uint8 NumPy image, got {getattr(image, 'dtype', type(image))}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    raise DetectorError(f"detect() needs an H x W x 3 BGR image, got shape {image.shape}")
