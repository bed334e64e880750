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
from pathlib import Path

import cv2
import numpy as np

from fer_perception.detection import Detection
from fer_perception.errors import DetectorError

MODEL_DIR = Path(__file__).resolve().parent / "models"
BLAZEFACE_ONNX_PATH = MODEL_DIR / "blazeface_short_range.onnx"
BLAZEFACE_TFLITE_PATH = MODEL_DIR / "blazeface_short_range.tflite"

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


def decode(regressors: np.ndarray, classificators: np.ndarray, score_threshold: float,
           anchors: np.ndarray = ANCHORS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw outputs -> (boxes [M,4] xmin,ymin,xmax,ymax, scores [M], keypoints [M,6,2]),
    all in the 128 x 128 input's normalised 0..1 coordinates, only for scores >= threshold."""
    raw = classificators.reshape(-1)
    # sigmoid(clip(raw)) >= t  <=>  raw >= logit(t) (|logit(t)| < 100): threshold the raw scores,
    # then clip and exponentiate only the few kept ones.
    t = min(max(score_threshold, 1e-7), 1 - 1e-7)
    keep = np.flatnonzero(raw >= math.log(t / (1 - t)))
    if keep.size == 0:
        return np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty((0, NUM_KEYPOINTS, 2), np.float32)
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw[keep], -SCORE_CLIP, SCORE_CLIP)))
    reg = regressors.reshape(NUM_ANCHORS, 16)[keep] / COORD_SCALE
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
                 iou_threshold: float = DEFAULT_IOU_THRESHOLD):
    """MediaPipe's WEIGHTED non-max suppression. Returns (boxes, scores, keypoints), best first."""
    order = np.argsort(-scores, kind="stable")
    out_b, out_s, out_k = [], [], []
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
        order = order[(overlap <= iou_threshold) & (order != top)]
    if not out_b:
        return boxes[:0], scores[:0], keypoints[:0]
    return np.array(out_b, np.float32), np.array(out_s, np.float32), np.array(out_k, np.float32)


class _Letterbox:
    """Per-frame-size geometry of one letterboxed view: the image region (x0, y0, w, h) it covers,
    its scale into the 128 square and its centring offsets. Cached per frame size."""

    __slots__ = ("x0", "y0", "w", "h", "scale", "new_w", "new_h", "pad_x", "pad_y")

    def __init__(self, x0: int, y0: int, w: int, h: int):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.scale = INPUT_SIZE / max(w, h)
        self.new_w = max(1, min(INPUT_SIZE, int(round(w * self.scale))))
        self.new_h = max(1, min(INPUT_SIZE, int(round(h * self.scale))))
        self.pad_x = (INPUT_SIZE - self.new_w) // 2
        self.pad_y = (INPUT_SIZE - self.new_h) // 2


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


class BlazeFaceDetector:
    """BlazeFace short-range detector. ``detect(bgr) -> list[Detection]`` (best score first).

    Options: ``backend`` ('auto' | 'onnxruntime' | 'tensorrt' | 'tflite'; auto = TensorRT when
    present, else LiteRT when installed, else ONNX Runtime), ``threads``, ``precision`` (fp32/fp16 on TensorRT),
    ``score_threshold`` (0.5), ``iou_threshold`` (0.3), ``tiles`` ((cols, rows) or None),
    ``tile_score_threshold`` (0.65: detections from tiles only, which see more false positives -
    hands, dark backgrounds - than the whole frame), ``tile_overlap`` (0.25),
    ``model_path`` (an .onnx; the tflite backend uses the sibling .tflite), ``interpolation``
    (cv2 flag of the downscale to 128 px; INTER_LINEAR, like MediaPipe's bilinear sampling, costs
    ~0.03 ms on 640 x 480; INTER_AREA ~0.5 ms).
    """

    name = "blazeface"

    def __init__(
        self,
        *,
        backend: str = "auto",
        model_path: str | os.PathLike | None = None,
        threads: int | None = None,
        precision: str = "fp32",
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        iou_threshold: float = DEFAULT_IOU_THRESHOLD,
        tiles: tuple[int, int] | None = None,
        tile_overlap: float = 0.25,
        tile_score_threshold: float = 0.65,
        interpolation: int = cv2.INTER_LINEAR,
    ):
        from fer_perception.inference import create_runner, load_with_tensorrt_fallback, resolve_backend_name

        if not 0.0 < score_threshold < 1.0:
            raise DetectorError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if not 0.0 < iou_threshold <= 1.0:
            raise DetectorError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if tiles is not None:
            tiles = (int(tiles[0]), int(tiles[1]))
            if tiles[0] < 1 or tiles[1] < 1 or tiles == (1, 1):
                raise DetectorError(f"tiles must be (cols, rows) with at least 2 tiles, got {tiles}")
        self.tiles = tiles
        self.tile_overlap = float(tile_overlap)
        self.tile_score_threshold = max(float(tile_score_threshold), float(score_threshold))
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.interpolation = interpolation
        batch = 1 + (tiles[0] * tiles[1] if tiles else 0)

        def load(concrete: str, _precision: str):  # the detector runs in the precision it was given
            path = Path(model_path) if model_path is not None else BLAZEFACE_ONNX_PATH
            if concrete == "tflite" and model_path is None:
                path = BLAZEFACE_TFLITE_PATH
            return path, create_runner(concrete, path, precision=precision, threads=threads,
                                       max_batch=batch, opt_batch=batch)

        twin = BLAZEFACE_TFLITE_PATH if model_path is None else model_path
        path, self._runner = load_with_tensorrt_fallback(backend, resolve_backend_name(backend, twin), precision,
                                                         twin, load, "BlazeFace")
        if tuple(self._runner.input_shape[1:]) != (INPUT_SIZE, INPUT_SIZE, 3):
            raise DetectorError(f"{path}: input shape {self._runner.input_shape} is not N x 128 x 128 x 3")
        names = self._runner.output_names
        try:
            self._reg_index = names.index("regressors")
            self._cls_index = names.index("classificators")
        except ValueError:
            raise DetectorError(f"{path}: outputs {names} lack 'regressors'/'classificators'") from None
        self.backend = self._runner.name
        self._geometry_key: tuple[int, int] | None = None
        self._views: list[_Letterbox] = []
        self._buffer = np.empty((batch, INPUT_SIZE, INPUT_SIZE, 3), np.float32)

    def close(self) -> None:
        self._runner.close()

    def describe(self) -> dict:
        return {"detector": self.name, "score_threshold": self.score_threshold,
                "iou_threshold": self.iou_threshold, "tiles": self.tiles,
                "tile_score_threshold": self.tile_score_threshold if self.tiles else None,
                **self._runner.describe()}

    def _setup(self, height: int, width: int) -> None:
        views = [_Letterbox(0, 0, width, height)]
        if self.tiles:
            views += [_Letterbox(*r) for r in tile_regions(width, height, *self.tiles, self.tile_overlap)]
        self._views = views
        self._buffer.fill(-1.0)  # letterbox borders: black, i.e. -1 after scaling
        self._geometry_key = (height, width)

    def _fill(self, bgr: np.ndarray) -> None:
        for i, v in enumerate(self._views):
            src = bgr if i == 0 else bgr[v.y0 : v.y0 + v.h, v.x0 : v.x0 + v.w]
            small = cv2.resize(src, (v.new_w, v.new_h), interpolation=self.interpolation)
            # cv2's SIMD channel swap, then one multiply into the letterbox buffer (a reversed-
            # channel NumPy view instead costs ~10x more: 0.2 ms vs 17 us at 128 x 96).
            rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
            region = self._buffer[i, v.pad_y : v.pad_y + v.new_h, v.pad_x : v.pad_x + v.new_w]
            np.multiply(rgb, np.float32(2.0 / 255.0), out=region, casting="unsafe")
            region -= np.float32(1.0)

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        bgr = _as_bgr(bgr)
        height, width = bgr.shape[:2]
        if self._geometry_key != (height, width):
            self._setup(height, width)
        self._fill(bgr)
        outputs = self._runner.run(self._buffer[: len(self._views)])
        reg, cls = outputs[self._reg_index], outputs[self._cls_index]
        all_b, all_s, all_k = [], [], []
        for i, v in enumerate(self._views):
            b, s, k = decode(reg[i], cls[i], self.score_threshold if i == 0 else self.tile_score_threshold)
            if s.size == 0:
                continue
            # Undo the letterbox: 0..1 of the 128 square -> pixels of the full frame.
            b = (b * INPUT_SIZE - np.array([v.pad_x, v.pad_y, v.pad_x, v.pad_y], np.float32)) / v.scale
            b += np.array([v.x0, v.y0, v.x0, v.y0], np.float32)
            k = (k * INPUT_SIZE - np.array([v.pad_x, v.pad_y], np.float32)) / v.scale + np.array([v.x0, v.y0], np.float32)
            if i > 0:
                # A tile sees faces cut by its inner borders; those belong to a neighbour tile.
                margin = 0.02 * max(v.w, v.h)
                cut = np.zeros(len(s), bool)
                if v.x0 > 0:
                    cut |= b[:, 0] < v.x0 + margin
                if v.y0 > 0:
                    cut |= b[:, 1] < v.y0 + margin
                if v.x0 + v.w < width:
                    cut |= b[:, 2] > v.x0 + v.w - margin
                if v.y0 + v.h < height:
                    cut |= b[:, 3] > v.y0 + v.h - margin
                b, s, k = b[~cut], s[~cut], k[~cut]
            all_b.append(b)
            all_s.append(s)
            all_k.append(k)
        if not all_b:
            return []
        boxes, scores, kps = weighted_nms(np.concatenate(all_b), np.concatenate(all_s),
                                          np.concatenate(all_k), self.iou_threshold)
        result = []
        for b, s, k in zip(boxes, scores, kps):
            x0 = min(max(float(b[0]), 0.0), float(width))
            y0 = min(max(float(b[1]), 0.0), float(height))
            x1 = min(max(float(b[2]), 0.0), float(width))
            y1 = min(max(float(b[3]), 0.0), float(height))
            if x1 - x0 < 1.0 or y1 - y0 < 1.0:
                continue
            result.append(Detection(box=(x0, y0, x1 - x0, y1 - y0), score=float(s), keypoints=k))
        return result


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
