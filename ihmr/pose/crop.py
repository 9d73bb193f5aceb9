"""SPIN's crop and augmentation, with OpenCV, and the matching label transforms.

Conventions (SPIN ``utils/imutils.py`` and ``datasets/base_dataset.py``):

- A crop is a square of ``200 * scale`` pixels around ``center``, resized to ``res`` (224) px and
  rotated by ``rot`` degrees about its centre. :func:`crop_matrix` is SPIN's ``get_transform``
  (pixel -> crop pixel, rotation sign included), used for the image (``cv2.warpAffine``) and the
  2-D keypoints alike, so they always agree.
- Images are RGB in [0, 1] after the crop, multiplied per channel by the colour noise ``pn``
  (clipped to [0, 1]) and normalised with the ImageNet mean and std (:mod:`ihmr.spin`).
- 2-D keypoints become normalised crop coordinates ``2 kp / res - 1`` in [-1, 1].
- A flip mirrors the crop horizontally; keypoints are permuted left <-> right (SPIN's
  ``J24_FLIP_PERM``, ``J49_FLIP_PERM``) and their x negated (2-D keypoints also shifted by
  ``-2 / res``, so they land on the flipped pixels exactly; SPIN leaves this 1 px offset);
  SMPL poses are permuted with
  ``SMPL_JOINTS_FLIP_PERM`` and their axis-angle y and z negated (a rotation mirrored in the
  x = 0 plane is ``M R M`` with ``M = diag(-1, 1, 1)``).
- A rotation by ``rot`` degrees turns the 3-D joints and the global orientation about the camera
  axis by ``-rot`` degrees (SPIN's ``rot_aa`` and ``j3d_processing``).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ..spin import CROP_BOX, IMG_NORM_MEAN, IMG_NORM_STD, IMG_RES

SMPL_JOINTS_FLIP_PERM = [
    0,
    2,
    1,
    3,
    5,
    4,
    6,
    8,
    7,
    9,
    11,
    10,
    12,
    14,
    13,
    15,
    17,
    16,
    19,
    18,
    21,
    20,
    23,
    22,
]
SMPL_POSE_FLIP_PERM = [3 * i + k for i in SMPL_JOINTS_FLIP_PERM for k in range(3)]
J24_FLIP_PERM = [
    5,
    4,
    3,
    2,
    1,
    0,
    11,
    10,
    9,
    8,
    7,
    6,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    21,
    20,
    23,
    22,
]
OPENPOSE_FLIP_PERM = [
    0,
    1,
    5,
    6,
    7,
    2,
    3,
    4,
    8,
    12,
    13,
    14,
    9,
    10,
    11,
    16,
    15,
    18,
    17,
    22,
    23,
    24,
    19,
    20,
    21,
]
J49_FLIP_PERM = OPENPOSE_FLIP_PERM + [25 + i for i in J24_FLIP_PERM]


@dataclasses.dataclass
class Augment:
    """One view's augmentation: flip, rotation (deg), scale factor, colour noise (3,)."""

    flip: bool = False
    rot: float = 0.0
    scale: float = 1.0
    pn: tuple = (1.0, 1.0, 1.0)

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        noise: float = 0.4,
        rot_factor: float = 30,
        scale_factor: float = 0.25,
    ) -> "Augment":
        """SPIN's ``augm_params``: flip p=0.5, colour noise U(1 -/+ 0.4), rotation
        clip(N(0, 30), -60, 60) with p=0.6 (else 0), scale clip(N(1, 0.25), 0.75, 1.25)."""
        flip = bool(rng.random() <= 0.5)
        pn = tuple(rng.uniform(1 - noise, 1 + noise, 3).tolist())
        rot = float(min(2 * rot_factor, max(-2 * rot_factor, rng.normal() * rot_factor)))
        if rng.random() <= 0.6:
            rot = 0.0
        scale = float(min(1 + scale_factor, max(1 - scale_factor, rng.normal() * scale_factor + 1)))
        return cls(flip, rot, scale, pn)


def crop_matrix(center, scale: float, res: int = IMG_RES, rot: float = 0.0) -> np.ndarray:
    """(3, 3) SPIN ``get_transform``: image pixel (x, y, 1) -> crop pixel, square crop of
    ``200 * scale`` px about ``center``, rotated by ``rot`` degrees."""
    h = CROP_BOX * scale
    t = np.array(
        [
            [res / h, 0, res * (-float(center[0]) / h + 0.5)],
            [0, res / h, res * (-float(center[1]) / h + 0.5)],
            [0, 0, 1.0],
        ]
    )
    if rot:
        a = np.deg2rad(-rot)
        r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
        shift = np.array([[1, 0, -res / 2], [0, 1, -res / 2], [0, 0, 1.0]])
        unshift = np.array([[1, 0, res / 2], [0, 1, res / 2], [0, 0, 1.0]])
        t = unshift @ r @ shift @ t
    return t


def crop_image(
    img: np.ndarray, center, scale: float, res: int = IMG_RES, aug: Augment | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (res, res, 3) float32 RGB in [0, 1], SPIN's crop + augmentation."""
    aug = aug or Augment()
    m = crop_matrix(center, scale * aug.scale, res, aug.rot)
    out = cv2.warpAffine(
        img,
        m[:2],
        (res, res),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    if aug.flip:
        out = out[:, ::-1]
    out = out.astype(np.float32) / 255.0
    return np.clip(out * np.asarray(aug.pn, dtype=np.float32), 0.0, 1.0)


def normalise(crop: np.ndarray) -> np.ndarray:
    """(res, res, 3) RGB in [0, 1] -> (3, res, res) ImageNet-normalised float32."""
    return np.ascontiguousarray(((crop - IMG_NORM_MEAN) / IMG_NORM_STD).transpose(2, 0, 1))


def flip_keypoints(kp: np.ndarray) -> np.ndarray:
    """(..., 24 or 49, C) normalised keypoints -> mirrored (permuted, x negated); a copy."""
    perm = {24: J24_FLIP_PERM, 25: OPENPOSE_FLIP_PERM, 49: J49_FLIP_PERM}[kp.shape[-2]]
    out = np.array(kp[..., perm, :], dtype=np.float64)
    out[..., 0] = -out[..., 0]
    return out


def flip_pose(pose: np.ndarray) -> np.ndarray:
    """(..., 72) SMPL axis-angle -> mirrored pose (joints swapped, y and z negated); a copy."""
    out = np.array(pose[..., SMPL_POSE_FLIP_PERM], dtype=np.float64)
    out[..., 1::3] *= -1
    out[..., 2::3] *= -1
    return out


def _inplane(rot: float) -> np.ndarray:
    a = np.deg2rad(-rot)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def transform_keypoints2d(
    kp: np.ndarray, center, scale: float, res: int = IMG_RES, aug: Augment | None = None
) -> np.ndarray:
    """(J, 3) pixel keypoints [x, y, vis] -> normalised crop coordinates (flip included)."""
    aug = aug or Augment()
    m = crop_matrix(center, scale * aug.scale, res, aug.rot)
    xy = np.asarray(kp[:, :2], np.float64) @ m[:2, :2].T + m[:2, 2]
    out = np.concatenate([2.0 * xy / res - 1.0, np.asarray(kp[:, 2:], np.float64)], 1)
    if aug.flip:
        # the flipped crop maps pixel x to res - 1 - x; in normalised units that is -x - 2 / res
        out = flip_keypoints(out)
        out[:, 0] -= 2.0 / res
    return out


def transform_keypoints3d(S: np.ndarray, aug: Augment | None = None) -> np.ndarray:
    """(J, 4) 3-D joints [x, y, z, conf] -> rotated in-plane (and flipped)."""
    aug = aug or Augment()
    out = np.array(S, dtype=np.float64)
    out[:, :3] = out[:, :3] @ _inplane(aug.rot).T
    return flip_keypoints(out) if aug.flip else out


def transform_pose(pose: np.ndarray, aug: Augment | None = None) -> np.ndarray:
    """(72,) axis-angle -> global orientation rotated in-plane (and the pose flipped)."""
    from scipy.spatial.transform import Rotation

    aug = aug or Augment()
    out = np.array(pose, dtype=np.float64)
    if aug.rot:
        r = _inplane(aug.rot) @ Rotation.from_rotvec(out[:3]).as_matrix()
        out[:3] = Rotation.from_matrix(r).as_rotvec()
    return flip_pose(out) if aug.flip else out
