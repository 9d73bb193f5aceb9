"""Camera maths for rendering: SPIN's weak-perspective camera, crop-to-image intrinsics, projection.

Convention: vertices are in camera coordinates as SPIN uses them (OpenCV: x right, y down,
z away from the camera, metres); a body whose global orientation includes SPIN's 180 degree turn
about x stands upright. Pixels: u right, v down, (0, 0) is the top-left pixel's corner.

Weak perspective (SPIN, ``pred_cam = [s, tx, ty]`` for a square crop of ``img_res`` pixels
rendered with focal length ``f``, 5000 px for 224 px)::

    t = [tx, ty, 2 f / (img_res * s)]                                   (1)
    u = f (X + tx) / (Z + tz) + img_res / 2,  v likewise with Y, ty      (2)

so a point at depth ~tz lands at u ~ img_res / 2 * (1 + s (X + tx)): s is the crop's scale.
Rendering the crop at ``res`` pixels instead keeps ``t`` and scales ``f`` to ``f * res / img_res``.

Full image: SPIN crops a square of side ``b = 200 * scale`` pixels centred at ``center`` and
resizes it to ``img_res``. A crop pixel x_c maps to the image pixel
``center + (x_c - img_res / 2) * b / img_res``; putting (2) in gives the pinhole camera of the
full image with the same ``t``::

    f_full = f * b / img_res,   principal point = center                 (3)

which is exact (no small-depth approximation), so predictions are overlaid on the original image.
"""

from __future__ import annotations

import numpy as np

from ihmr.errors import DataError, ShapeError, check_positive

SPIN_FOCAL = 5000.0
SPIN_RES = 224


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def weak_perspective_to_translation(cam, focal_length: float = SPIN_FOCAL,
                                    img_res: int = SPIN_RES) -> np.ndarray:
    """Eq. (1): ``cam`` (..., 3) = [s, tx, ty] -> translation (..., 3) in metres.

    Raises ``ValueError`` for a scale s <= 0 (the body would sit behind the camera).
    """
    cam = _np(cam)
    if cam.shape[-1:] != (3,):
        raise ShapeError(f"cam must have shape (..., 3) = [s, tx, ty], got {cam.shape}")
    s = cam[..., 0]
    if not np.all(s > 0):
        raise DataError(
            f"camera scale s must be > 0, got {int(np.sum(~(s > 0)))} value(s) <= 0 or NaN "
            f"(min {np.nanmin(s) if s.size else s}); such a prediction places the body behind the "
            "camera and cannot be rendered"
        )
    return np.stack([cam[..., 1], cam[..., 2], 2.0 * focal_length / (img_res * s)], axis=-1)


def crop_intrinsics(center, scale: float, focal_length: float = SPIN_FOCAL,
                    img_res: int = SPIN_RES) -> tuple[float, np.ndarray]:
    """Eq. (3): focal length (px) and principal point (2,) of the full image for a SPIN crop."""
    center = _np(center)
    if center.shape != (2,):
        raise ShapeError(f"center must have shape (2,) = [x, y] pixels, got {center.shape}")
    check_positive(float(scale), "scale")
    return focal_length * 200.0 * float(scale) / img_res, center


def project(points, translation, focal_length: float, principal_point) -> np.ndarray:
    """Pinhole projection, Eq. (2): ``points`` (..., N, 3) moved by ``translation`` (..., 3)
    -> pixels (..., N, 2)."""
    p = _np(points) + _np(translation)[..., None, :]
    pp = _np(principal_point)
    return focal_length * p[..., :2] / p[..., 2:3] + pp


def fit_translation(vertices, focal_length: float, size: tuple[int, int],
                    fill: float = 0.85) -> np.ndarray:
    """A translation (3,) that centres ``vertices`` (N, 3) in an image of ``size`` = (H, W)
    with the principal point at the centre, the larger extent filling ``fill`` of the image."""
    v = _np(vertices)
    lo, hi = v.min(0), v.max(0)
    mid = 0.5 * (lo + hi)
    h, w = size
    # depth at which the bounding box's projection fills `fill` of the image (near face: lo z)
    tz = focal_length * max((hi[0] - lo[0]) / (fill * w), (hi[1] - lo[1]) / (fill * h))
    return np.array([-mid[0], -mid[1], tz - lo[2]])
