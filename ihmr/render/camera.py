"""Pinhole camera maths for rendering: projection and automatic framing.

Convention: vertices are in camera coordinates as SPIN uses them (OpenCV: x right, y down,
z away from the camera, metres); pixels: u right, v down, (0, 0) is the top-left pixel's corner.
A camera is a translation (3,) added to the vertices, a focal length in pixels and a principal
point. SPIN's weak-perspective camera and its crop become such a camera through
:mod:`ihmr.spin` (``weak_perspective_to_translation``, ``crop_focal_length``,
``crop_intrinsics``), which also derives the equations.
"""

from __future__ import annotations

import numpy as np


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def project(points, translation, focal_length: float, principal_point) -> np.ndarray:
    """Pinhole projection (Eq. (2) of :mod:`ihmr.spin`): ``points`` (..., N, 3) moved by
    ``translation`` (..., 3) -> pixels (..., N, 2)."""
    p = _np(points) + _np(translation)[..., None, :]
    pp = _np(principal_point)
    return focal_length * p[..., :2] / p[..., 2:3] + pp


def fit_translation(
    vertices, focal_length: float, size: tuple[int, int], fill: float = 0.85
) -> np.ndarray:
    """A translation (3,) that centres ``vertices`` (N, 3) in an image of ``size`` = (H, W)
    with the principal point at the centre, the larger extent filling ``fill`` of the image."""
    v = _np(vertices)
    lo, hi = v.min(0), v.max(0)
    mid = 0.5 * (lo + hi)
    h, w = size
    # depth at which the bounding box's projection fills `fill` of the image (near face: lo z)
    tz = focal_length * max((hi[0] - lo[0]) / (fill * w), (hi[1] - lo[1]) / (fill * h))
    return np.array([-mid[0], -mid[1], tz - lo[2]])
