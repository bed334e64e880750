#!/usr/bin/env python3
"""Draw docs/img/preprocessing_served_vs_fer2013.png: served crops next to FER2013 crops.

Row 1: crops served by the runtime (the node's default BlazeFace detector, every view on every call,
+ fer_perception.preprocessing.align_detection) from obama.jpg, two_people.jpg, scikit-image's
astronaut and frames of hamilton_clip.mp4 (detections with score >= 0.75, every 30th frame). Row 2:
random FER2013 training images (seed 1). Rows 3 and 4: CK+48's own crops (random, seed 1) and the
same faces through the pipeline (upscaled x3 with Lanczos, pasted into a grey 640 x 480 frame,
detected and aligned). The last column of each row is the mean image of that row's set with the
(short-range) template eye positions marked in red, so scale and vertical position can be compared
at a glance.

Usage: python tools/make_preprocessing_figure.py [--out docs/img/preprocessing_served_vs_fer2013.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from fer_perception.detection import create_detector  # noqa: E402
from fer_perception.params import defaults  # noqa: E402
from fer_perception.perception import NODE_KEY, detector_options_from_params  # noqa: E402
from fer_perception.preprocessing import TEMPLATE_LEFT_EYE, TEMPLATE_RIGHT_EYE, align_detection  # noqa: E402

SHARED = REPO_ROOT.parent / "shared"
SCALE = 3
COLUMNS = 10


def node_detector():
    options = detector_options_from_params(defaults(NODE_KEY))
    options.update(scan_frames=1, backend="onnxruntime")
    return create_detector("blazeface", **options)


def served_crops(det) -> list[np.ndarray]:
    from skimage import data

    images = [cv2.imread(str(SHARED / "media" / n)) for n in ("obama.jpg", "two_people.jpg")]
    images = [im for im in images if im is not None] + [cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)]
    cap = cv2.VideoCapture(str(SHARED / "media" / "hamilton_clip.mp4"))
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % 30 == 0:
            images.append(frame)
        index += 1
    crops = []
    for image in images:
        for d in det.detect(image):
            if d.score >= 0.75:
                crops.append(align_detection(image, d))
    return crops


def ckplus_rows(det, count: int):
    """(CK+48's own crops, the same faces through the pipeline or None where not found)."""
    with np.load(SHARED / "data" / "ckplus48.npz") as z:
        faces = z["images"][np.random.default_rng(1).choice(len(z["images"]), count, replace=False)]
    served = []
    for face in faces:
        frame = np.full((480, 640, 3), 110, np.uint8)
        frame[168:312, 248:392] = cv2.resize(face, (144, 144), interpolation=cv2.INTER_LANCZOS4)[..., None]
        found = det.detect(frame)
        served.append(align_detection(frame, max(found, key=lambda d: d.score)) if found else None)
    return list(faces), served


def tile(img: np.ndarray, eyes: bool = False) -> np.ndarray:
    big = cv2.resize(img, (48 * SCALE, 48 * SCALE), interpolation=cv2.INTER_NEAREST)
    big = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    if eyes:
        for x, y in (TEMPLATE_RIGHT_EYE, TEMPLATE_LEFT_EYE):
            cv2.circle(big, (round(x * SCALE * 16), round(y * SCALE * 16)), 3 * 16, (0, 0, 255), -1,
                       lineType=cv2.LINE_AA, shift=4)
    return cv2.copyMakeBorder(big, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))


def label(width: int, text: str) -> np.ndarray:
    bar = np.full((22, width, 3), 255, np.uint8)
    cv2.putText(bar, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "img" / "preprocessing_served_vs_fer2013.png")
    parser.add_argument("--npz", type=Path, default=SHARED / "data" / "fer2013.npz")
    args = parser.parse_args(argv)

    det = node_detector()
    served = served_crops(det)
    ck_own, ck_served = ckplus_rows(det, COLUMNS)
    with np.load(args.npz) as z:
        images, split = z["images"], z["split"]
    rng = np.random.default_rng(1)
    train = np.flatnonzero(split == "train")
    fer = images[rng.choice(train, COLUMNS, replace=False)]
    fer_mean = images[rng.choice(train, 1000, replace=False)].astype(np.float32).mean(axis=0)
    served_mean = np.mean(np.stack(served).astype(np.float32), axis=0)

    pick = np.linspace(0, len(served) - 1, COLUMNS).round().astype(int)
    row1 = np.hstack([tile(served[i]) for i in pick] + [tile(served_mean.astype(np.uint8), eyes=True)])
    row2 = np.hstack([tile(f) for f in fer] + [tile(fer_mean.astype(np.uint8), eyes=True)])
    blank = np.zeros((48, 48), np.uint8)
    found = [c for c in ck_served if c is not None]
    row3 = np.hstack([tile(f) for f in ck_own] + [tile(np.mean(ck_own, axis=0).astype(np.uint8), eyes=True)])
    row4 = np.hstack([tile(blank if c is None else c) for c in ck_served]
                     + [tile(np.mean(found, axis=0).astype(np.uint8) if found else blank, eyes=True)])
    width = row1.shape[1]
    figure = np.vstack([
        label(width, f"served: node-default BlazeFace + align_detection on obama / two_people / astronaut / clip frames "
                     f"(last: mean of {len(served)} crops, red = template eyes)"),
        row1,
        label(width, "FER2013 training images, random (last: mean of 1000, red = template eyes)"),
        row2,
        label(width, "CK+48's own crops, random (last: their mean)"),
        row3,
        label(width, "the same CK+48 faces through the pipeline (x3 Lanczos, pasted into a 640x480 frame; black = missed)"),
        row4,
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), figure)
    print(f"wrote {args.out} ({len(served)} served crops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
