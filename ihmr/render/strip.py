"""Comparison strips (image | ground truth | method A | method B, like the paper's Fig. 6),
grids of panels, and atomic PNG writing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ihmr.errors import ConfigError, ShapeError
from ihmr.io import atomic_path


def _check_panel(p, i: int) -> np.ndarray:
    p = np.asarray(p)
    if p.ndim != 3 or p.shape[2] != 3 or p.dtype != np.uint8:
        raise ShapeError(f"panel {i} must be an uint8 (H, W, 3) RGB array, got {p.dtype} {p.shape}")
    return p


def label_panel(panel: np.ndarray, text: str, bar: int | None = None) -> np.ndarray:
    """Return ``panel`` (H, W, 3) uint8 with a white bar of ``bar`` px on top holding ``text``."""
    panel = _check_panel(panel, 0)
    h, w = panel.shape[:2]
    bar = bar if bar is not None else max(16, h // 12)
    scale = bar / 36.0
    thick = max(1, int(round(scale * 1.5)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    while scale > 0.2 and cv2.getTextSize(text, font, scale, thick)[0][0] > w - 8:
        scale *= 0.9
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    top = np.full((bar, w, 3), 255, np.uint8)
    cv2.putText(
        top,
        text,
        ((w - tw) // 2, (bar + th) // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (20, 20, 20),
        thick,
        cv2.LINE_AA,
    )
    return np.concatenate([top, panel], axis=0)


def _fit_height(panel: np.ndarray, height: int) -> np.ndarray:
    if panel.shape[0] == height:
        return panel
    width = max(1, int(round(panel.shape[1] * height / panel.shape[0])))
    return cv2.resize(panel, (width, height), interpolation=cv2.INTER_AREA)


def comparison_strip(
    panels: Sequence[np.ndarray], labels: Sequence[str] | None = None, gap: int = 4
) -> np.ndarray:
    """Panels side by side (resized to the first one's height), each under its label.

    ``panels``: uint8 (H_i, W_i, 3) RGB arrays, e.g. [image, ground truth, method A, method B];
    ``labels``: one string per panel or None. Returns (H (+ label bar), sum W + gaps, 3) uint8.
    """
    if not panels:
        raise ConfigError("comparison_strip needs at least one panel")
    panels = [_check_panel(p, i) for i, p in enumerate(panels)]
    if labels is not None and len(labels) != len(panels):
        raise ConfigError(f"got {len(labels)} labels for {len(panels)} panels; give one per panel")
    height = panels[0].shape[0]
    cols = [_fit_height(p, height) for p in panels]
    if labels is not None:
        cols = [label_panel(p, t) for p, t in zip(cols, labels, strict=True)]
    spacer = np.full((cols[0].shape[0], gap, 3), 255, np.uint8)
    out = [cols[0]]
    for c in cols[1:]:
        out += [spacer, c]
    return np.concatenate(out, axis=1)


def grid(rows: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Stack strips (uint8 (H_i, W_i, 3)) vertically, padding narrower ones with white."""
    rows = [_check_panel(r, i) for i, r in enumerate(rows)]
    width = max(r.shape[1] for r in rows)
    padded = [
        np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows
    ]
    return np.concatenate(padded, axis=0)[: -gap or None]


def save_png(path: str | os.PathLike, rgb: np.ndarray, compression: int = 9) -> Path:
    """Write an uint8 (H, W, 3) RGB array as a PNG, atomically (whole file or none)."""
    rgb = _check_panel(rgb, 0)
    ok, buf = cv2.imencode(
        ".png",
        np.ascontiguousarray(rgb[..., ::-1]),
        [cv2.IMWRITE_PNG_COMPRESSION, int(compression)],
    )
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)
