"""Detected boxes drawn over an image (``ihmr predict --show-boxes``): one colour per source,
the box labelled ``source score``."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

# RGB per source; anything else (a future source) is drawn white
COLOURS = {
    "face": (255, 64, 64),
    "profile_face": (255, 160, 0),
    "upper_body": (255, 255, 0),
    "full_body": (0, 200, 255),
    "hog": (0, 255, 0),
    "dnn": (255, 0, 255),
    "boxes": (64, 128, 255),
    "center_scale": (128, 128, 255),
    "whole_image": (200, 200, 200),
}


def draw_boxes(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    sources: Sequence[str],
    scores: Sequence[float],
    scale: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 RGB with each box [x1, y1, x2, y2] (pixels of the
    image before a resize by ``scale`` = (sx, sy)) outlined and labelled ``source score``
    (``source`` alone where the score is NaN)."""
    out = np.ascontiguousarray(image).copy()
    thick = max(1, round(max(out.shape[:2]) / 400))
    for box, src, score in zip(boxes, sources, scores, strict=True):
        x1, y1, x2, y2 = (int(round(v * s)) for v, s in zip(box, (*scale, *scale), strict=True))
        colour = COLOURS.get(src, (255, 255, 255))
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, thick)
        label = src if not np.isfinite(score) else f"{src} {score:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, thick)
        ty = max(th + base, y1)  # inside the image when the box touches the top
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), colour, -1)
        cv2.putText(
            out,
            label,
            (x1, ty - base),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thick,
            (0, 0, 0),
            thick,
            cv2.LINE_AA,
        )
    return out
