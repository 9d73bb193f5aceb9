"""SPIN's camera conventions (ihmr.spin) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.errors import DataError, ShapeError
from ihmr.pose.losses import project_joints
from ihmr.spin import (
    FOCAL_LENGTH,
    IMG_RES,
    crop_focal_length,
    crop_intrinsics,
    weak_perspective_to_translation,
)


def _pinhole(points, t, f, c):
    """Naive loop: u = f x / z + c for each point moved by t."""
    out = []
    for x, y, z in np.asarray(points) + np.asarray(t):
        out.append([f * x / z + c, f * y / z + c])
    return np.array(out)


def test_translation_puts_a_point_where_the_weak_perspective_camera_does(rng):
    # a point at depth 0 is exactly at the crop coordinate s (X + tx) in [-1, 1] units
    for s, tx, ty in [(0.9, 0.0, 0.0), (0.55, 0.12, -0.3), (1.4, -0.2, 0.05)]:
        t = weak_perspective_to_translation([s, tx, ty])
        pts = np.c_[rng.uniform(-0.5, 0.5, (6, 2)), np.zeros(6)]
        uv = _pinhole(pts, t, FOCAL_LENGTH, IMG_RES / 2)
        want = IMG_RES / 2 * (1 + s * (pts[:, :2] + [tx, ty]))
        np.testing.assert_allclose(uv, want, rtol=1e-9)


def test_translation_is_spin_pred_cam_t():
    # SPIN train/trainer.py: [tx, ty, 2 * 5000 / (224 * s + 1e-9)]
    t = weak_perspective_to_translation([0.8, 0.1, -0.2])
    np.testing.assert_allclose(t, [0.1, -0.2, 2 * 5000.0 / (224 * 0.8 + 1e-9)], rtol=1e-12)
    assert (FOCAL_LENGTH, IMG_RES) == (5000.0, 224)


def test_torch_and_numpy_agree_for_any_batch_shape(rng):
    cam = np.c_[rng.uniform(0.3, 1.5, (2, 4, 1)).reshape(8, 1), rng.normal(0, 0.2, (8, 2))].reshape(
        2, 4, 3
    )
    want = weak_perspective_to_translation(cam)
    got = weak_perspective_to_translation(torch.from_numpy(cam))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and got.shape == (2, 4, 3)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    half = weak_perspective_to_translation(torch.from_numpy(cam).float())
    assert half.dtype == torch.float32


def test_torch_path_is_differentiable_and_unchecked():
    cam = torch.tensor(
        [[0.7, 0.1, -0.1], [1.1, -0.05, 0.2]], dtype=torch.float64, requires_grad=True
    )
    assert torch.autograd.gradcheck(weak_perspective_to_translation, (cam,))
    # no value check on tensors (a training step must not synchronise): s <= 0 passes through
    t = weak_perspective_to_translation(torch.tensor([-0.5, 0.0, 0.0]))
    assert t[2] < 0


def test_torch_path_compiles_to_one_graph():
    f = torch.compile(weak_perspective_to_translation, backend="eager", fullgraph=True)
    cam = torch.tensor([[0.7, 0.1, -0.1]])
    torch.testing.assert_close(f(cam), weak_perspective_to_translation(cam))


def test_bad_cameras_are_rejected():
    with pytest.raises(DataError, match="s must be > 0"):
        weak_perspective_to_translation([[0.9, 0, 0], [np.nan, 0, 0]])
    with pytest.raises(ShapeError, match=r"\(\.\.\., 3\)"):
        weak_perspective_to_translation(torch.zeros(4, 2))


def test_project_joints_is_the_weak_perspective_crop_coordinate(rng):
    # the training loss's projection in [-1, 1] crop units, for points at depth 0
    cam = torch.tensor([[0.9, 0.05, -0.1], [0.6, -0.2, 0.3]], dtype=torch.float64)
    joints = torch.zeros(2, 5, 3, dtype=torch.float64)
    joints[..., :2] = torch.from_numpy(rng.uniform(-0.4, 0.4, (2, 5, 2)))
    got = project_joints(joints, cam)
    want = cam[:, None, :1] * (joints[..., :2] + cam[:, None, 1:])
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_crop_focal_length_rescales_the_crop(rng):
    # rendering the crop at 512 px instead of 224 px scales every pixel by 512 / 224
    t = weak_perspective_to_translation([0.75, 0.03, 0.02])
    pts = rng.normal(0, 0.3, (10, 3))
    uv224 = _pinhole(pts, t, crop_focal_length(224), 112.0)
    uv512 = _pinhole(pts, t, crop_focal_length(512), 256.0)
    np.testing.assert_allclose(uv512, uv224 * 512 / 224, rtol=1e-10)
    assert crop_focal_length(224) == FOCAL_LENGTH


def test_crop_intrinsics_side_of_the_crop_box():
    f, pp = crop_intrinsics([300.0, 200.0], 1.5)
    assert f == pytest.approx(5000.0 * 200 * 1.5 / 224)
    np.testing.assert_array_equal(pp, [300.0, 200.0])
