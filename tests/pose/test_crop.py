"""SPIN crop and augmentation: image and keypoints agree, flips mirror, rotations match."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.pose.crop import (
    SMPL_JOINTS_FLIP_PERM,
    Augment,
    crop_image,
    flip_pose,
    normalise,
    transform_keypoints2d,
    transform_keypoints3d,
    transform_pose,
)
from ihmr.spin import IMG_NORM_MEAN, IMG_NORM_STD

from .helpers import rodrigues


def _dot_image(x, y):
    img = np.zeros((300, 400, 3), np.uint8)
    img[y - 1 : y + 2, x - 1 : x + 2] = 255
    return img


@pytest.mark.parametrize(
    "aug", [Augment(), Augment(rot=25.0, scale=1.1), Augment(flip=True, rot=-40.0, scale=0.9)]
)
def test_keypoints_follow_the_image(rng, aug):
    x, y, res = 150, 120, 64
    kp = np.concatenate([rng.uniform(100, 200, (24, 2)), np.ones((24, 1))], 1)
    kp[0, :2] = (x, y)
    crop = crop_image(_dot_image(x, y), (160, 140), 1.0, res, aug).sum(-1)
    ys, xs = np.nonzero(crop > 0.2 * crop.max())
    w = crop[ys, xs]
    found = np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
    out = transform_keypoints2d(kp, (160, 140), 1.0, res, aug)
    j = 5 if aug.flip else 0  # J24: right ankle <-> left ankle
    px = (out[j, :2] + 1) * res / 2
    np.testing.assert_allclose(px, found, atol=0.6)
    assert out[j, 2] == 1


def test_colour_noise_and_normalise():
    img = np.full((50, 50, 3), 128, np.uint8)
    c = crop_image(img, (25, 25), 0.2, 16, Augment(pn=(0.5, 1.0, 3.0)))
    np.testing.assert_allclose(c[8, 8], [128 / 255 * 0.5, 128 / 255, 1.0], atol=1e-6)
    n = normalise(c)
    assert n.shape == (3, 16, 16)
    np.testing.assert_allclose(n[:, 8, 8], (c[8, 8] - IMG_NORM_MEAN) / IMG_NORM_STD, rtol=1e-6)


def test_flip_pose_mirrors_rotations(rng):
    pose = rng.normal(0, 0.6, 72)
    m = np.diag([-1.0, 1.0, 1.0])
    r = rodrigues(torch.tensor(pose).reshape(24, 3)).numpy()
    rf = rodrigues(torch.tensor(flip_pose(pose)).reshape(24, 3)).numpy()
    for i, src in enumerate(SMPL_JOINTS_FLIP_PERM):
        np.testing.assert_allclose(rf[i], m @ r[src] @ m, atol=1e-10)
    np.testing.assert_allclose(flip_pose(flip_pose(pose)), pose)


def test_rotation_turns_body_and_joints_alike(rng, toy_body):
    pose = rng.normal(0, 0.3, 72)
    aug = Augment(rot=35.0)
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    zero = torch.zeros(1, 10)
    j = toy_body(betas=zero, pose=rodrigues(t(pose).reshape(1, 24, 3))).joints[0].numpy()
    jr = (
        toy_body(betas=zero, pose=rodrigues(t(transform_pose(pose, aug)).reshape(1, 24, 3)))
        .joints[0]
        .numpy()
    )
    S = np.concatenate([j, np.ones((24, 1))], 1)
    np.testing.assert_allclose(transform_keypoints3d(S, aug)[:, :3], jr, atol=1e-5)
    # a flip of 3-D joints negates x after the left/right permutation
    f = transform_keypoints3d(S, Augment(flip=True))
    np.testing.assert_allclose(f[5, :3], S[0, :3] * [-1, 1, 1])


def test_augment_sampling_like_spin():
    rng = np.random.default_rng(0)
    augs = [Augment.sample(rng) for _ in range(4000)]
    rot = np.array([a.rot for a in augs])
    assert 0.55 < (rot == 0).mean() < 0.65 and np.abs(rot).max() <= 60
    assert 0.45 < np.mean([a.flip for a in augs]) < 0.55
    sc = np.array([a.scale for a in augs])
    assert sc.min() >= 0.75 and sc.max() <= 1.25
    pn = np.array([a.pn for a in augs])
    assert pn.min() >= 0.6 and pn.max() <= 1.4


def test_image_and_3d_rotations_agree(rng):
    """An orthographic view of the joints, cropped and rotated, equals the rotated 3-D joints."""
    S = np.concatenate([rng.uniform(-0.8, 0.8, (24, 3)), np.ones((24, 1))], 1)
    c = np.array([210.0, 170.0])
    kp = np.concatenate([c + 100 * S[:, :2], np.ones((24, 1))], 1)  # 200 px crop: 1 m = 100 px
    for rot in (0.0, 30.0, -55.0):
        aug = Augment(rot=rot)
        np.testing.assert_allclose(
            transform_keypoints2d(kp, c, 1.0, 224, aug)[:, :2],
            transform_keypoints3d(S, aug)[:, :2],
            atol=1e-9,
        )
