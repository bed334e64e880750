"""Face preprocessing: the ONE implementation, used by the ROS node and by the training package.

    crop = align_face(frame_bgr, det.box, det.keypoints)   # 48 x 48 uint8 grey, FER2013-like
    batch = to_model_input([crop, ...])                    # float32 N x 48 x 48 x 1, 0..255
    crop = preprocess_photo(photo_bgr)                     # largest face of a raw photo, or None

Alignment is a similarity transform (rotation + uniform scale + shift) that maps the detected eye
centres onto fixed template positions in the 48 x 48 output, applied with one ``cv2.warpAffine``.
That levels the eye line and reproduces FER2013's tight framing, because the template IS
FER2013's: the median BlazeFace eye positions over 1000 FER2013 training images (procedure and
numbers in docs/preprocessing.md; reproduce with tools/derive_face_template.py).

When a face is larger than the output, the warp writes a k x supersampled crop (k = ceil(1 / scale),
at most 4) that is then box-averaged k x k (INTER_AREA), and faces more than 4 x the output are first
shrunk by an integer factor with INTER_AREA: no aliasing (FER2013's crops are smooth downscales) and
no extra blur (a plain bilinear warp at a fractional offset blurs the 48-px crop by up to half a
pixel, which cost the model ~1 point on CK+48; docs/preprocessing.md). When no eye keypoints are
available (Haar detector), the eyes are estimated from the box with ratios measured on the same
FER2013 sample. BlazeFace full range has its own template (its keypoints sit differently).

Coordinates: points and boxes are continuous pixel coordinates (the image spans 0..W, a pixel's
centre is at i + 0.5), the convention of the detectors' outputs.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import cv2
import numpy as np

FACE_SIZE = 48

# Template eye centres in the 48 x 48 output (continuous coordinates), subject's right eye on the
# image left. From tools/derive_face_template.py on 1000 FER2013 training images (seed 0):
# BlazeFace found 986; median right eye (15.150, 19.007), left eye (32.867, 18.783), IQR ~3 px;
# made symmetric: eye height 18.895, inter-ocular distance 17.717, centred on x = 24.
TEMPLATE_RIGHT_EYE = (15.141, 18.895)
TEMPLATE_LEFT_EYE = (32.859, 18.895)
# BlazeFace full range places the eyes of the same faces differently (wider, lower): its own template,
# from tools/derive_face_template.py --model full --upscale 2 --pad 144 (faces ~1/4 of the view, as in
# the node's tiles): 965 of the 1000 found; median right eye (14.479, 19.683), left (32.638, 18.941);
# symmetric: eye height 19.312, inter-ocular distance 18.159.
TEMPLATE_FULL_RIGHT_EYE = (14.921, 19.312)
TEMPLATE_FULL_LEFT_EYE = (33.079, 19.312)
#: eye template per keypoint source (Detection.model); None (Haar, estimated eyes): the short one,
#: whose FER2013 measurement the Haar box ratios were made against
TEMPLATES = {
    "short": (TEMPLATE_RIGHT_EYE, TEMPLATE_LEFT_EYE),
    "full": (TEMPLATE_FULL_RIGHT_EYE, TEMPLATE_FULL_LEFT_EYE),
    None: (TEMPLATE_RIGHT_EYE, TEMPLATE_LEFT_EYE),
}

# Eye centres relative to a detector box (x, y, w, h) when no keypoints are available:
# right eye at (x + rx * w, y + ey * h), left eye at (x + (1 - rx) * w, y + ey * h).
# Measured with tools/derive_face_template.py on the same FER2013 sample: BlazeFace's eyes relative
# to the Haar cascade's box (808 faces both found) and to BlazeFace's own box (986 faces).
HAAR_BOX_EYE_RATIOS = (0.3147, 0.3979)
BLAZEFACE_BOX_EYE_RATIOS = (0.283, 0.2755)
BLAZEFACE_FULL_BOX_EYE_RATIOS = (0.297, 0.3174)  # same run as TEMPLATE_FULL_*

# Largest supersampling factor of the warp (faces up to this many times the output need no pre-shrink).
SUPERSAMPLE = 4


def estimate_eyes(box: Sequence[float], ratios: tuple[float, float] = HAAR_BOX_EYE_RATIOS):
    """((x, y) right eye, (x, y) left eye) pixel positions estimated from a face box (x, y, w, h)."""
    x, y, w, h = (float(v) for v in box)
    rx, ey = ratios
    return (x + rx * w, y + ey * h), (x + (1.0 - rx) * w, y + ey * h)


def _plausible_eyes(rx: float, ry: float, lx: float, ly: float, box: Sequence[float]) -> bool:
    if not all(math.isfinite(v) for v in (rx, ry, lx, ly)):
        return False
    dist = math.hypot(lx - rx, ly - ry)
    size = max(float(box[2]), float(box[3]), 1.0)
    return 0.12 * size <= dist <= 1.2 * size


def eye_transform(right_eye, left_eye, size: int = FACE_SIZE,
                  template: tuple[Sequence[float], Sequence[float]] = (TEMPLATE_RIGHT_EYE, TEMPLATE_LEFT_EYE)):
    """Similarity mapping the eyes onto the template, in continuous coordinates:
    dst = A @ src + t with A = s * R. Returns (A 2x2, t (2,), s)."""
    rx, ry = float(right_eye[0]), float(right_eye[1])
    lx, ly = float(left_eye[0]), float(left_eye[1])
    k = size / FACE_SIZE
    trx, try_ = template[0][0] * k, template[0][1] * k
    tlx, tly = template[1][0] * k, template[1][1] * k
    sx, sy = lx - rx, ly - ry
    dx, dy = tlx - trx, tly - try_
    src_len = math.hypot(sx, sy)
    if src_len < 1e-6:
        raise ValueError("eye positions coincide; cannot align")
    scale = math.hypot(dx, dy) / src_len
    angle = math.atan2(dy, dx) - math.atan2(sy, sx)
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    # Eye midpoints correspond: t = c_dst - A @ c_src.
    mx, my = (rx + lx) / 2, (ry + ly) / 2
    tx = (trx + tlx) / 2 - (c * mx - s * my)
    ty = (try_ + tly) / 2 - (s * mx + c * my)
    return np.array([[c, -s], [s, c]]), np.array([tx, ty]), scale


def _to_index_matrix(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Continuous-coordinate affine (dst = a @ src + t) -> cv2.warpAffine's pixel-index matrix:
    with src = q + 0.5 and dst = p + 0.5, p = a @ q + (a @ [0.5, 0.5] + t - 0.5)."""
    m = np.empty((2, 3), np.float64)
    m[:, :2] = a
    m[0, 2] = 0.5 * (a[0, 0] + a[0, 1]) + t[0] - 0.5
    m[1, 2] = 0.5 * (a[1, 0] + a[1, 1]) + t[1] - 0.5
    return m


def align_face(image, box: Sequence[float], keypoints=None, *, size: int = FACE_SIZE,
               box_eye_ratios: tuple[float, float] = HAAR_BOX_EYE_RATIOS,
               template: tuple[Sequence[float], Sequence[float]] | None = None) -> np.ndarray:
    """Align one face to a ``size`` x ``size`` (48) uint8 grey crop framed like FER2013.

    ``image``: H x W x 3 BGR (or H x W grey) uint8 frame. ``box``: (x, y, w, h) pixels.
    ``keypoints``: K x 2 pixels with the subject's right eye at [0] and left eye at [1] (BlazeFace
    order), or None to estimate the eyes from the box (``box_eye_ratios``, Haar-calibrated by
    default). Keypoints whose eye distance is implausible for the box also fall back to the box.
    ``template``: the eye positions in the 48 x 48 output (:data:`TEMPLATES`; default: the one
    measured for BlazeFace short range). Pixels outside the frame are filled by replicating the border.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"align_face needs a uint8 H x W (x 3) NumPy image, got "
                         f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
    eyes = None
    if keypoints is not None and len(keypoints) >= 2:
        rx, ry = float(keypoints[0][0]), float(keypoints[0][1])
        lx, ly = float(keypoints[1][0]), float(keypoints[1][1])
        if _plausible_eyes(rx, ry, lx, ly, box):
            eyes = ((rx, ry), (lx, ly))
    if eyes is None:
        eyes = estimate_eyes(box, box_eye_ratios)
    a, t, scale = eye_transform(eyes[0], eyes[1], size, template or TEMPLATES["short"])

    # Source region the output covers: the inverse image of the output square, plus 2 px.
    # (A = s R, so A^-1 = R^T / s; the corners' bounding box is centre +- half extent.)
    inv_scale = 1.0 / scale
    cx = (size / 2 - t[0]) * a[0, 0] + (size / 2 - t[1]) * a[1, 0]
    cy = (size / 2 - t[0]) * a[0, 1] + (size / 2 - t[1]) * a[1, 1]
    cx *= inv_scale * inv_scale
    cy *= inv_scale * inv_scale
    half = 0.5 * size * inv_scale * (abs(a[0, 0]) + abs(a[1, 0])) * inv_scale + 2.0
    height, width = image.shape[:2]
    x0 = min(max(int(math.floor(cx - half)), 0), width - 1)
    y0 = min(max(int(math.floor(cy - half)), 0), height - 1)
    x1 = max(min(int(math.ceil(cx + half)), width), x0 + 1)
    y1 = max(min(int(math.ceil(cy + half)), height), y0 + 1)
    # Resampling without extra blur (the model loses ~1.3 points on CK+48 from one bilinear
    # half-pixel shift of its 48-px input; docs/preprocessing.md): for a face larger than the output,
    # warp into a ``k`` x supersampled output (k = ceil(1 / scale), at most SUPERSAMPLE), so the
    # bilinear warp enlarges (its blur is 1/k of an output pixel), then box-average k x k blocks
    # (INTER_AREA by an integer factor). Faces more than SUPERSAMPLE x the output are first shrunk by
    # the integer factor that brings the warp's scale into 1..2 (INTER_AREA: no aliasing).
    k = min(int(math.ceil(inv_scale - 1e-9)), SUPERSAMPLE) if scale < 1.0 else 1
    warp_scale = scale * k
    factor = int(1.0 / warp_scale) if warp_scale < 1.0 else 1
    if factor > 1:
        # Integer-factor INTER_AREA (OpenCV's fast box-filter path) needs sizes divisible by it.
        # Grow the ROI to a multiple of it, or shrink where the frame ends.
        factor = max(1, min(factor, (x1 - x0), (y1 - y0)))
        x1 = x0 + -(-(x1 - x0) // factor) * factor
        y1 = y0 + -(-(y1 - y0) // factor) * factor
        if x1 > width:
            x1 -= factor
        if y1 > height:
            y1 -= factor
    roi = image[y0:y1, x0:x1]
    grey = roi if roi.ndim == 2 else cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY if roi.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    # dst = A @ (origin + q * factor) + t for q in (shrunk) ROI continuous coordinates.
    t = t + a @ np.array([x0, y0], np.float64)
    if factor > 1:
        grey = cv2.resize(grey, (grey.shape[1] // factor, grey.shape[0] // factor), interpolation=cv2.INTER_AREA)
        a = a * factor
    if k == 1:
        return cv2.warpAffine(grey, _to_index_matrix(a, t), (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    big = cv2.warpAffine(grey, _to_index_matrix(a * k, t * k), (size * k, size * k), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def to_model_input(crops: np.ndarray | Iterable[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """48 x 48 uint8 crops (a list, or an N x 48 x 48 [x 1] array) -> float32 N x 48 x 48 x 1 in
    0..255, the model contract. ``out``: an optional preallocated float32 array with room for N."""
    if isinstance(crops, np.ndarray):
        arr = crops
        if arr.ndim == 2:
            arr = arr[None]
    else:
        crops = list(crops)
        if not crops:
            return np.empty((0, FACE_SIZE, FACE_SIZE, 1), np.float32) if out is None else out[:0]
        arr = np.stack([np.asarray(c) for c in crops])
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[1:] != (FACE_SIZE, FACE_SIZE, 1):
        from fer_perception.errors import InputShapeError

        raise InputShapeError(f"crops must be 48 x 48 grey images, got an array of shape {arr.shape}")
    n = arr.shape[0]
    if out is None:
        return arr.astype(np.float32)
    view = out[:n]
    np.copyto(view, arr, casting="unsafe")
    return view


_default_detector = None


def _photo_detector():
    global _default_detector
    if _default_detector is None:
        from fer_perception.detection import create_detector

        _default_detector = create_detector("blazeface", backend="onnxruntime")
    return _default_detector


def preprocess_photo(bgr: np.ndarray, detector=None) -> np.ndarray | None:
    """Detect the largest face of a raw photo (BGR or grey uint8) and align it: 48 x 48 uint8 grey,
    or None when no face is found. ``detector`` defaults to one shared BlazeFace on ONNX Runtime
    (created on first use); pass your own to reuse it or to use Haar."""
    image = np.asarray(bgr)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    det = detector if detector is not None else _photo_detector()
    faces = det.detect(image)
    if not faces:
        return None
    face = max(faces, key=lambda d: d.area)
    return align_detection(image, face)


def box_eye_ratios_for(detector) -> tuple[float, float]:
    """The box-to-eyes ratios matching a detector's boxes (used when its keypoints are missing)."""
    return BLAZEFACE_BOX_EYE_RATIOS if getattr(detector, "name", "") == "blazeface" else HAAR_BOX_EYE_RATIOS


def alignment_for(model: str | None) -> tuple[tuple[float, float], tuple[Sequence[float], Sequence[float]]]:
    """(box-to-eye ratios, eye template) measured for the network that placed a face's keypoints:
    BlazeFace ``"short"`` / ``"full"``, or None (Haar boxes, no keypoints)."""
    ratios = {"short": BLAZEFACE_BOX_EYE_RATIOS, "full": BLAZEFACE_FULL_BOX_EYE_RATIOS}.get(model, HAAR_BOX_EYE_RATIOS)
    return ratios, TEMPLATES.get(model, TEMPLATES[None])


def align_detection(image, detection, *, size: int = FACE_SIZE) -> np.ndarray:
    """:func:`align_face` of one ``fer_perception.detection.Detection`` with the template and box ratios
    of the network that found it (``detection.model``: BlazeFace short / full, or None = Haar)."""
    ratios, template = alignment_for(detection.model)
    return align_face(image, detection.box, detection.keypoints, size=size, box_eye_ratios=ratios,
                      template=template)
