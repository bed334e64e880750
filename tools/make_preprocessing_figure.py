#!/usr/bin/env python3
"""Draw docs/img/preprocessing_served_vs_fer2013.png: served crops next to FER2013 crops.

Row 1: crops served by the runtime (BlazeFace + fer_perception.preprocessing.align_face) from
obama.jpg, two_people.jpg, scikit-image's astronaut and frames of hamilton_clip.mp4 (detections with
score >= 0.75, every 30th frame). Row 2: random FER2013 training images (seed 1). The last column
of each row is the mean image of that row's set (served: all crops collected; FER2013: 1000 random
training images) with the template eye positions marked in red, so scale and vertical position can
be compared at a glance.

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
from fer_perception.preprocessing import TEMPLATE_LEFT_EYE, TEMPLATE_RIGHT_EYE, align_face  # noqa: E402

SHARED = REPO_ROOT.parent / "shared"
SCALE = 3
COLUMNS = 10


def served_crops() -> list[np.ndarray]:
    from skimage import data

    det = create_detector("blazeface", backend="onnxruntime")
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
                crops.append(align_face(image, d.box, d.keypoints))
    return crops


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

    served = served_crops()
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
    width = row1.shape[1]
    figure = np.vstack([
        label(width, f"served: BlazeFace + align_face on obama / two_people / astronaut / clip frames "
                     f"(last: mean of {len(served)} crops, red = template eyes)"),
        row1,
        label(width, "FER2013 training images, random (last: mean of 1000, red = template eyes)"),
        row2,
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), figure)
    print(f"wrote {args.out} ({len(served)} served crops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
