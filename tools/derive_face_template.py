#!/usr/bin/env python3
"""Derive the alignment template of fer_perception/preprocessing.py from FER2013 itself.

Procedure (recorded with its output in docs/preprocessing.md):

1. Draw ``--samples`` (1000) FER2013 *training* images with a fixed seed (0).
2. Upscale each 48x48 image x4 to 192x192 (cv2.INTER_CUBIC, half-pixel centres, so a point's
   continuous coordinates scale exactly by 4) and pad it with 48 black pixels on every side (the
   crops are so tight that BlazeFace misses more faces that fill the whole frame: 941/1000 found
   without padding, 986 with it).
3. Run BlazeFace (the runtime detector); keep the top detection; map its eye keypoints back into
   the 48x48 image's continuous pixel coordinates ((p - 48) / 4).
4. Template = per-coordinate median over the found faces, made symmetric about the vertical centre
   line (mean eye height, half the median inter-ocular distance either side of x = 24).
5. For the Haar fallback (no keypoints): run the Haar cascade on the same padded images; for faces
   both detectors found, express BlazeFace's eyes relative to the Haar box ((x - bx) / bw,
   (y - by) / bh); the medians are the box-to-eyes ratios used when keypoints are missing. Same for
   BlazeFace's own box, used when a BlazeFace detection's keypoints are implausible.

For BlazeFace full range (``--model full``, the model of the node's tiles and re-detection views,
which finds small faces and misses many that fill the frame) the faces are upscaled x2 only and
padded to 4 x their size (``--upscale 2 --pad 144``: faces ~1/4 of the view, where it is used).

Usage: python tools/derive_face_template.py [--npz ../shared/data/fer2013.npz] [--samples 1000]
       python tools/derive_face_template.py --model full --upscale 2 --pad 144
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from fer_perception.detection import create_detector  # noqa: E402

UPSCALE = 4
PAD = 48


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npz", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "fer2013.npz")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", choices=["short", "full"], default="short", help="BlazeFace model")
    parser.add_argument("--upscale", type=int, default=UPSCALE)
    parser.add_argument("--pad", type=int, default=PAD)
    args = parser.parse_args(argv)

    with np.load(args.npz) as z:
        images, split = z["images"], z["split"]
    train = np.flatnonzero(split == "train")
    sel = np.random.default_rng(args.seed).choice(train, args.samples, replace=False)
    blaze = create_detector("blazeface", backend="onnxruntime", model=args.model)
    up, pad = args.upscale, args.pad
    haar = create_detector("haar")

    eyes, haar_rel, blaze_rel, blaze_boxes = [], [], [], []
    for i in sel:
        big = cv2.resize(images[i], (48 * up, 48 * up), interpolation=cv2.INTER_CUBIC)
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        bgr = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
        dets = blaze.detect(bgr)
        if not dets:
            continue
        det = dets[0]
        right, left = det.right_eye, det.left_eye
        eyes.append(np.concatenate([(right - pad) / up, (left - pad) / up]))
        bx, by, bw, bh = det.box
        blaze_rel.append([(right[0] - bx) / bw, (right[1] - by) / bh, (left[0] - bx) / bw, (left[1] - by) / bh])
        blaze_boxes.append([(bx - pad) / up, (by - pad) / up, bw / up, bh / up])
        hd = haar.detect(bgr)
        if hd:
            hx, hy, hw, hh = max(hd, key=lambda d: d.area).box
            cx, cy = (right + left) / 2
            if hx <= cx <= hx + hw and hy <= cy <= hy + hh:
                haar_rel.append([(right[0] - hx) / hw, (right[1] - hy) / hh, (left[0] - hx) / hw, (left[1] - hy) / hh])
    eyes = np.array(eyes)
    med = np.median(eyes, axis=0)
    q1, q3 = np.percentile(eyes, [25, 75], axis=0)
    eye_y = (med[1] + med[3]) / 2
    half_dist = (med[2] - med[0]) / 2
    haar_med = np.median(np.array(haar_rel), axis=0)
    blaze_med = np.median(np.array(blaze_rel), axis=0)

    def sym(m):  # symmetric ratios: right eye x, eye y, left eye x = 1 - right eye x
        return {"right_eye_x": round(float((m[0] + 1 - m[2]) / 2), 4), "eye_y": round(float((m[1] + m[3]) / 2), 4)}

    report = {
        "samples": int(args.samples),
        "seed": args.seed,
        "model": args.model,
        "upscale": up,
        "pad": pad,
        "blazeface_found": int(len(eyes)),
        "median_eyes_48px": {"right": med[:2].round(3).tolist(), "left": med[2:].round(3).tolist()},
        "iqr_eyes_48px": {"right": (q3 - q1)[:2].round(3).tolist(), "left": (q3 - q1)[2:].round(3).tolist()},
        "median_blazeface_box_48px": np.median(np.array(blaze_boxes), axis=0).round(3).tolist(),
        "template": {
            "right_eye": [round(float(24.0 - half_dist), 3), round(float(eye_y), 3)],
            "left_eye": [round(float(24.0 + half_dist), 3), round(float(eye_y), 3)],
            "interocular_48px": round(float(2 * half_dist), 3),
        },
        "haar_pairs": int(len(haar_rel)),
        "haar_box_eye_ratios": sym(haar_med),
        "haar_box_eye_ratios_raw": haar_med.round(4).tolist(),
        "blazeface_box_eye_ratios": sym(blaze_med),
        "blazeface_box_eye_ratios_raw": blaze_med.round(4).tolist(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
