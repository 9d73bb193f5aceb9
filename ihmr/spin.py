"""SPIN's conventions in one place: the crop, its camera and the image normalisation.

Every benchmark input that comes from SPIN (nkolot/SPIN) follows the constants of its
``constants.py``: a person is cut out as a square of ``200 * scale`` pixels about ``center``
(``utils/imutils.py``, ``crop``), resized to ``IMG_RES`` = 224 px, normalised with the ImageNet
mean and std (``IMG_NORM_MEAN`` / ``IMG_NORM_STD``), and the regressor predicts a
weak-perspective camera ``cam = [s, tx, ty]`` for that crop, which SPIN turns into a pinhole
camera of focal length ``FOCAL_LENGTH`` = 5000 px (``train/trainer.py`` and ``demo.py``,
``pred_cam_t``).

Coordinates: points are in camera coordinates as SPIN uses them (OpenCV: x right, y down, z away
from the camera, metres); a body whose global orientation includes SPIN's 180 degree turn about x
stands upright. Pixels: u right, v down, (0, 0) is the top-left pixel's corner.

The weak-perspective camera of a crop of ``img_res`` pixels is the translation::

    t = [tx, ty, 2 f / (img_res * s)]                                   (1)

of the pinhole camera with focal length ``f`` and principal point at the crop's centre::

    u = f (X + tx) / (Z + tz) + img_res / 2,  v likewise with Y, ty      (2)

so a point at depth Z = 0 lands exactly at ``u = img_res / 2 * (1 + s (X + tx))`` (and points
near it approximately): ``s`` is the crop's scale, and ``s (X + tx)`` the point's coordinate in
[-1, 1] crop units. Rendering the crop at ``res`` pixels instead keeps ``t`` and scales ``f`` to
``f * res / img_res`` (:func:`crop_focal_length`).

Full image: a crop pixel x_c maps to the image pixel ``center + (x_c - img_res / 2) * b / img_res``
with ``b = 200 * scale``; putting (2) in gives the pinhole camera of the full image with the same
``t``::

    f_full = f * b / img_res,   principal point = center                 (3)

which is exact (no small-depth approximation), so predictions overlay the original image
(:func:`crop_intrinsics`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import DataError, ShapeError, check_positive

FOCAL_LENGTH = 5000.0
"""Focal length in pixels of SPIN's crop camera (``constants.FOCAL_LENGTH``)."""
IMG_RES = 224
"""Side in pixels of SPIN's square crop (``constants.IMG_RES``)."""
CROP_BOX = 200.0
"""Pixels of the original image per unit of SPIN's ``scale``: the crop's side is ``200 * scale``."""
IMG_NORM_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
"""Per-channel RGB mean of SPIN's input normalisation (ImageNet; ``constants.IMG_NORM_MEAN``)."""
IMG_NORM_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
"""Per-channel RGB std of SPIN's input normalisation (ImageNet; ``constants.IMG_NORM_STD``)."""

_EPS = 1e-9  # SPIN's guard in the division of Eq. (1) (train/trainer.py, demo.py)


def weak_perspective_to_translation(
    cam: Any, focal_length: float = FOCAL_LENGTH, img_res: int = IMG_RES
):
    """Eq. (1): the camera translation ``[tx, ty, 2 f / (img_res s + 1e-9)]`` of a
    weak-perspective camera ``cam`` (..., 3) = [s, tx, ty]; returns (..., 3) metres.

    A torch tensor gives a tensor of its dtype and device, differentiable and without a value
    check, so a training step that calls it needs no host synchronisation (SPIN's camera prior
    keeps ``s`` positive there). Anything else is read as a float64 numpy array and checked:
    a scale ``s <= 0`` (or NaN) raises :class:`~ihmr.errors.DataError`, because such a camera
    puts the body behind the camera and it cannot be rendered.
    """
    if hasattr(cam, "detach"):
        if cam.shape[-1:] != (3,):
            raise ShapeError(f"cam must have shape (..., 3) = [s, tx, ty], got {tuple(cam.shape)}")
        tz = 2.0 * focal_length / (img_res * cam[..., 0] + _EPS)
        return torch.stack([cam[..., 1], cam[..., 2], tz], -1)
    cam = np.asarray(cam, dtype=np.float64)
    if cam.shape[-1:] != (3,):
        raise ShapeError(f"cam must have shape (..., 3) = [s, tx, ty], got {cam.shape}")
    s = cam[..., 0]
    if not np.all(s > 0):
        raise DataError(
            f"camera scale s must be > 0, got {int(np.sum(~(s > 0)))} value(s) <= 0 or NaN "
            f"(min {np.nanmin(s) if s.size else s}); such a prediction places the body behind the "
            "camera and cannot be rendered"
        )
    return np.stack([cam[..., 1], cam[..., 2], 2.0 * focal_length / (img_res * s + _EPS)], -1)


def crop_focal_length(
    res: int | float, focal_length: float = FOCAL_LENGTH, img_res: int = IMG_RES
) -> float:
    """Focal length in pixels for the crop rendered at ``res`` pixels: ``f * res / img_res``."""
    return focal_length * float(res) / img_res


def crop_intrinsics(
    center, scale: float, focal_length: float = FOCAL_LENGTH, img_res: int = IMG_RES
) -> tuple[float, np.ndarray]:
    """Eq. (3): focal length (px) and principal point (2,) of the full image for the SPIN crop
    of ``center`` (2,) = [x, y] pixels and ``scale`` (side ``200 * scale`` px)."""
    center = np.asarray(center, dtype=np.float64)
    if center.shape != (2,):
        raise ShapeError(f"center must have shape (2,) = [x, y] pixels, got {center.shape}")
    check_positive(float(scale), "scale")
    return focal_length * CROP_BOX * float(scale) / img_res, center
