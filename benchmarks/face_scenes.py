"""Real faces pasted into real frames at known boxes: the ground truth of the reach and the
end-to-end accuracy benchmarks (benchmarks/detection_reach.py, benchmarks/paste_accuracy.py).

    sources = load_face_sources()                      # faces found in ../shared/media
    backgrounds = load_backgrounds((1280, 720))        # real frames with their own faces blurred out
    frame, boxes = compose(backgrounds[0], sources, sizes=[40], rng=rng, angle_range=30)

A *face source* is a square patch (2 x the face box, the face centred) cut from a photo or a video
frame, with the face's box in patch coordinates. It is pasted, scaled so that its face box is
``size`` px, rotated about the face centre, through a soft round mask (no hard seams for a detector
to see). The ground-truth box of a placement is the source's box scaled to ``size`` and centred on
the pasted face centre (the rotation turns the face, the upright box stays the face box).

Faces in the sources are found with BlazeFace short-range on frames large enough that it is in its
range (tiles), so the ground truth follows BlazeFace's box convention (forehead to chin, ears
excluded). Background frames: hamilton_clip.mp4 frames and the photos, resized to the frame size,
with every face BlazeFace finds there erased to a mosaic (what it cannot find stays: a better detector
may report such a face as a false positive). The erased boxes travel with the frame
(:class:`Background`): those people's heads and shoulders stay, and a detector may still call them
faces, so the reach benchmark counts detections there apart from false positives on the background.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FER_SHARED_DIR", REPO.parent / "shared"))
MEDIA = SHARED / "media"
PATCH_SCALE = 2.0  # patch side / face box side


@dataclass(frozen=True)
class FaceSource:
    name: str
    patch: np.ndarray  # S x S x 3 uint8, face centred
    box_w: float  # face box size in patch pixels
    box_h: float


def _patch(image: np.ndarray, box, name: str) -> FaceSource:
    x, y, w, h = box
    side = int(round(PATCH_SCALE * max(w, h)))
    cx, cy = x + w / 2, y + h / 2
    m = np.array([[1, 0, side / 2 - cx], [0, 1, side / 2 - cy]], np.float64)
    patch = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return FaceSource(name, patch, float(w), float(h))


def video_frames(path: Path, step: int = 1):
    cap = cv2.VideoCapture(str(path))
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            if i % step == 0:
                yield i, frame
            i += 1
    finally:
        cap.release()


def _consensus(image: np.ndarray, finders, min_box: float, min_score: float) -> list:
    """Face boxes both BlazeFace models agree on (IoU >= 0.6), as the mean of their boxes: the
    ground truth then favours neither model's box convention, and doubtful faces are left out."""
    short, full = (f.detect(image) for f in finders)
    boxes = []
    for d in short:
        if min(d.box[2:]) < min_box or d.score < min_score:
            continue
        best = max(full, key=lambda e: box_iou(d.box, e.box), default=None)
        if best is not None and box_iou(d.box, best.box) >= 0.6:
            boxes.append(tuple((a + b) / 2 for a, b in zip(d.box, best.box)))
    return boxes


def _finders():
    from fer_perception.detection import create_detector

    return [create_detector("blazeface", backend="onnxruntime", threads=1, model=m, tiles=(2, 2))
            for m in ("short", "full")]


def load_face_sources(min_box: float = 70.0) -> list[FaceSource]:
    """Faces of at least ``min_box`` px from the two photos and the video's close shots (several
    identities and head poses; the video is sampled every 15 frames)."""
    finders = _finders()
    sources: list[FaceSource] = []
    for name in ("obama.jpg", "two_people.jpg"):
        image = cv2.imread(str(MEDIA / name))
        if image is None:
            continue
        for i, box in enumerate(_consensus(image, finders, min_box, 0.7)):
            sources.append(_patch(image, box, f"{name}#{i}"))
    clip = MEDIA / "hamilton_clip.mp4"
    if clip.exists():
        for index, frame in video_frames(clip, step=15):
            big = cv2.resize(frame, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            for j, box in enumerate(_consensus(big, finders, min_box, 0.8)):
                sources.append(_patch(big, box, f"hamilton@{index}#{j}"))
    for f in finders:
        f.close()
    if not sources:
        raise FileNotFoundError(f"no face sources found under {MEDIA}")
    return sources


def _cover_transform(image_size: tuple[int, int], size: tuple[int, int]) -> tuple[float, int, int, int, int]:
    """(scale, resized w, resized h, crop x0, crop y0) of scaling an image of ``image_size`` (w, h) to
    cover ``size`` and cropping its centre."""
    w, h = size
    scale = max(w / image_size[0], h / image_size[1])
    big_w, big_h = max(w, round(image_size[0] * scale)), max(h, round(image_size[1] * scale))
    return scale, big_w, big_h, (big_w - w) // 2, (big_h - h) // 2


def _cover(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    _, big_w, big_h, x0, y0 = _cover_transform((image.shape[1], image.shape[0]), size)
    big = cv2.resize(image, (big_w, big_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])


def blur_faces(frame: np.ndarray, detectors, erased: list | None = None) -> np.ndarray:
    """Every face the detectors find, and a margin around it, smoothed to a 3 x 3 mosaic (a
    Gaussian blur leaves a face the full-range model still finds). The mosaic boxes (x, y, w, h)
    are appended to ``erased`` when given."""
    out = frame.copy()
    for detector in detectors:
        for d in detector.detect(out):
            x, y, w, h = d.box
            x0, y0 = max(0, int(x - 0.3 * w)), max(0, int(y - 0.3 * h))
            x1, y1 = min(frame.shape[1], int(x + 1.3 * w)), min(frame.shape[0], int(y + 1.3 * h))
            if x1 - x0 > 2 and y1 - y0 > 2:
                small = cv2.resize(out[y0:y1, x0:x1], (3, 3), interpolation=cv2.INTER_AREA)
                out[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
                if erased is not None:
                    erased.append((float(x0), float(y0), float(x1 - x0), float(y1 - y0)))
    return out


@dataclass(frozen=True)
class Background:
    """A real frame with its own people's faces erased, and where they were: a detector may still
    find a person there (head, hair and shoulders stay), so a reach benchmark scores detections
    centred in ``erased`` boxes as "don't care" (WIDER FACE's ignore regions), not as false
    positives on the background."""

    image: np.ndarray
    erased: tuple[tuple[float, float, float, float], ...]


def load_background_scenes(size: tuple[int, int], count: int = 12) -> list[Background]:
    """``count`` real frames of ``size`` (w, h): video frames spread over the clip plus the photos,
    their own faces erased (found at the frame's own size and at 2x), with the erased boxes."""
    from fer_perception.detection import create_detector

    finders = _finders() + [create_detector("blazeface", backend="onnxruntime", threads=1, model="full",
                                            tiles=(2, 2), score_threshold=0.4, tile_score_threshold=0.4)]
    raw = []
    clip = MEDIA / "hamilton_clip.mp4"
    if clip.exists():
        frames = [f for _, f in video_frames(clip, step=1)]
        picks = np.linspace(0, len(frames) - 1, max(1, count - 2)).astype(int)
        raw += [frames[i] for i in picks]
    for name in ("two_people.jpg", "obama.jpg"):
        image = cv2.imread(str(MEDIA / name))
        if image is not None:
            raw.append(image)
    out = []
    for image in raw[:count]:
        erased: list = []
        image = blur_faces(image, finders, erased)
        big = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
        erased_2x: list = []
        image = cv2.resize(blur_faces(big, finders, erased_2x), (image.shape[1], image.shape[0]),
                           interpolation=cv2.INTER_AREA)
        erased += [tuple(v / 2 for v in b) for b in erased_2x]
        scale, _, _, cx0, cy0 = _cover_transform((image.shape[1], image.shape[0]), size)
        boxes = tuple((x * scale - cx0, y * scale - cy0, w * scale, h * scale) for x, y, w, h in erased)
        out.append(Background(_cover(image, size), boxes))
    for f in finders:
        f.close()
    return out


def load_backgrounds(size: tuple[int, int], count: int = 12) -> list[np.ndarray]:
    """The images of :func:`load_background_scenes`."""
    return [b.image for b in load_background_scenes(size, count)]


def paste(frame: np.ndarray, source: FaceSource, centre: tuple[float, float], size: float,
          angle_deg: float = 0.0) -> tuple[float, float, float, float]:
    """Paste ``source`` into ``frame`` (in place) with its face box ``size`` px (the longer side)
    centred at ``centre``, turned by ``angle_deg`` (counter-clockwise). Returns the true box."""
    scale = size / max(source.box_w, source.box_h)
    side = source.patch.shape[0]
    half_out = side * scale / 2
    cx, cy = centre
    x0, y0 = int(math.floor(cx - half_out)) - 1, int(math.floor(cy - half_out)) - 1
    x1, y1 = int(math.ceil(cx + half_out)) + 1, int(math.ceil(cy + half_out)) + 1
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x1), min(frame.shape[0], y1)
    if fx1 <= fx0 or fy1 <= fy0:
        return (cx - size / 2, cy - size / 2, size, size)
    src = source.patch
    k = int(1 / (scale * 1.5)) if scale < 0.5 else 1
    if k > 1:  # pre-shrink with a box filter: warpAffine alone does not anti-alias
        src = cv2.resize(src, (side // k, side // k), interpolation=cv2.INTER_AREA)
    s_side = src.shape[0]
    eff = scale * side / s_side
    # patch (continuous coordinates) -> frame region: rotate + scale about the patch centre,
    # then the pixel-index convention of warpAffine (p = A q + A 0.5 + t - 0.5).
    m = cv2.getRotationMatrix2D((s_side / 2, s_side / 2), angle_deg, eff)
    m[0, 2] += cx - s_side / 2 - fx0
    m[1, 2] += cy - s_side / 2 - fy0
    m[:, 2] += 0.5 * m[:, :2].sum(axis=1) - 0.5
    w, h = fx1 - fx0, fy1 - fy0
    warped = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_CUBIC if eff > 1 else cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[fy0:fy1, fx0:fx1].astype(np.float32)
    r = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) / half_out
    mask = np.clip((1.0 - r) / 0.25, 0.0, 1.0)[..., None]  # opaque to 0.75 of the radius, soft edge
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    frame[fy0:fy1, fx0:fx1] = (warped * mask + region * (1 - mask) + 0.5).astype(np.uint8)
    bw, bh = source.box_w * scale, source.box_h * scale
    return (cx - bw / 2, cy - bh / 2, bw, bh)


def motion_blur(frame: np.ndarray, length: int, angle_deg: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle_deg, 1.0),
                       (length, length))
    return cv2.filter2D(frame, -1, k / max(k.sum(), 1e-6))


def low_light(frame: np.ndarray, rng: np.random.Generator, gain: float = 0.3, noise: float = 4.0) -> np.ndarray:
    dark = frame.astype(np.float32) * gain + rng.normal(0, noise, frame.shape).astype(np.float32)
    return np.clip(dark, 0, 255).astype(np.uint8)


VARIANTS = ("plain", "motion_blur", "low_light")


def apply_variant(frame: np.ndarray, variant: str, face_size: float, rng: np.random.Generator) -> np.ndarray:
    if variant == "plain":
        return frame
    if variant == "motion_blur":  # a subject moving ~ 10 % of the face size during the exposure
        length = max(3, int(round(0.1 * face_size)) | 1)
        return motion_blur(frame, length, float(rng.uniform(0, 180)))
    if variant == "low_light":
        return low_light(frame, rng)
    raise ValueError(f"unknown variant {variant!r}")


def place_boxes(width: int, height: int, size: float, count: int, rng: np.random.Generator,
                margin: float = 0.15) -> list[tuple[float, float]]:
    """Up to ``count`` face centres of faces ``size`` px, fully inside the frame, not overlapping
    (centres at least 2.1 sizes apart: no patch edge reaches another face box)."""
    centres: list[tuple[float, float]] = []
    lo_x, hi_x = size * (0.5 + margin), width - size * (0.5 + margin)
    lo_y, hi_y = size * (0.5 + margin), height - size * (0.5 + margin)
    if hi_x < lo_x or hi_y < lo_y:
        return centres
    for _ in range(count * 30):
        c = (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))
        if all(math.hypot(c[0] - o[0], c[1] - o[1]) >= 2.1 * size for o in centres):
            centres.append(c)
            if len(centres) == count:
                break
    return centres


def box_iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match(truth: list, found: list, threshold: float = 0.5, ignore=()) -> tuple[list[int | None], int]:
    """Greedy one-to-one matching by IoU: (index of the found box per true box or None, false
    positives). An unmatched found box whose centre lies in an ``ignore`` box is not counted."""
    pairs = sorted(((box_iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    hit: list[int | None] = [None] * len(truth)
    used = set()
    for value, i, j in pairs:
        if value < threshold:
            break
        if hit[i] is None and j not in used:
            hit[i] = j
            used.add(j)
    ignored = sum(j not in used and in_any(found[j], ignore) for j in range(len(found)))
    return hit, len(found) - len(used) - ignored


def in_any(box, regions) -> bool:
    """Whether ``box``'s centre lies inside any of ``regions`` (x, y, w, h)."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return any(x <= cx <= x + w and y <= cy <= y + h for x, y, w, h in regions)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))
