"""ihmr.geometry against scipy's Rotation, round trips in float64, corner cases, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from ihmr.errors import ShapeError
from ihmr.geometry import (
    axis_angle_to_matrix,
    geodesic_distance,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    rot6d_to_matrix,
)


def _random_rotvecs(rng, n, max_angle=np.pi):
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.uniform(0, max_angle, size=(n, 1))
    return axis * angle


def _corner_rotvecs(rng):
    axis = rng.normal(size=(6, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-9, 1e-4, np.pi - 1e-6, np.pi - 1e-3, 1.0])[:, None]
    return np.concatenate([axis * angles, np.eye(3) * np.pi, np.zeros((1, 3))])


def test_axis_angle_to_matrix_matches_scipy(rng):
    r = np.concatenate([_random_rotvecs(rng, 200), _corner_rotvecs(rng)])
    got = axis_angle_to_matrix(torch.from_numpy(r)).numpy()
    np.testing.assert_allclose(got, Rotation.from_rotvec(r).as_matrix(), atol=1e-12)


def test_matrix_to_axis_angle_matches_scipy(rng):
    r = _random_rotvecs(rng, 300, max_angle=np.pi - 1e-3)
    r = np.concatenate([r, _corner_rotvecs(rng)[:5]])
    mats = Rotation.from_rotvec(r).as_matrix()
    got = matrix_to_axis_angle(torch.from_numpy(mats)).numpy()
    np.testing.assert_allclose(got, Rotation.from_matrix(mats).as_rotvec(), atol=1e-9)


def test_axis_angle_at_pi_gives_same_rotation():
    # At exactly pi the axis sign is ambiguous: compare rotations, not vectors.
    r = np.concatenate([np.eye(3) * np.pi, np.array([[0.6, 0.0, 0.8]]) * np.pi])
    mats = torch.from_numpy(Rotation.from_rotvec(r).as_matrix())
    back = matrix_to_axis_angle(mats)
    np.testing.assert_allclose(back.norm(dim=-1).numpy(), np.pi, atol=1e-9)
    np.testing.assert_allclose(axis_angle_to_matrix(back).numpy(), mats.numpy(), atol=1e-9)


def test_quaternion_matches_scipy(rng):
    mats = Rotation.from_rotvec(_random_rotvecs(rng, 100)).as_matrix()
    q = matrix_to_quaternion(torch.from_numpy(mats)).numpy()
    ref = Rotation.from_matrix(mats).as_quat()[:, [3, 0, 1, 2]]  # scipy is (x, y, z, w)
    ref *= np.sign(ref[:, :1])
    np.testing.assert_allclose(q, ref, atol=1e-12)


def test_any_batch_shape_and_float64_round_trip(rng):
    r = torch.from_numpy(_random_rotvecs(rng, 2 * 3 * 4, np.pi - 1e-2).reshape(2, 3, 4, 3))
    mats = axis_angle_to_matrix(r)
    assert mats.shape == (2, 3, 4, 3, 3) and mats.dtype == torch.float64
    torch.testing.assert_close(matrix_to_axis_angle(mats), r, rtol=0, atol=1e-12)
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(mats)), mats, rtol=0, atol=1e-14)


def test_rot6d_interleaved_layout():
    mats = torch.arange(9, dtype=torch.float64).reshape(3, 3)
    # [a1x, a2x, a1y, a2y, a1z, a2z] = [R00, R01, R10, R11, R20, R21]
    assert matrix_to_rot6d(mats).tolist() == [0.0, 1.0, 3.0, 4.0, 6.0, 7.0]


def test_rot6d_gram_schmidt_against_naive(rng):
    x = rng.normal(size=(50, 6))
    got = rot6d_to_matrix(torch.from_numpy(x)).numpy()
    for i in range(50):
        a1, a2 = x[i, 0::2], x[i, 1::2]
        b1 = a1 / np.linalg.norm(a1)
        b2 = a2 - b1.dot(a2) * b1
        b2 /= np.linalg.norm(b2)
        ref = np.stack([b1, b2, np.cross(b1, b2)], axis=1)
        np.testing.assert_allclose(got[i], ref, atol=1e-12)
        assert abs(np.linalg.det(got[i]) - 1) < 1e-12


def test_geodesic_distance_matches_scipy(rng):
    r1 = Rotation.from_rotvec(_random_rotvecs(rng, 100))
    r2 = Rotation.from_rotvec(_random_rotvecs(rng, 100))
    got = geodesic_distance(torch.from_numpy(r1.as_matrix()), torch.from_numpy(r2.as_matrix()))
    np.testing.assert_allclose(got.numpy(), (r1.inv() * r2).magnitude(), atol=1e-10)
    same = torch.from_numpy(r1.as_matrix())
    assert geodesic_distance(same, same).abs().max() < 1e-7
    # Small angles keep full precision (arccos of the trace would give ~1e-8 here).
    tiny = axis_angle_to_matrix(torch.tensor([[1e-9, 0.0, 0.0]], dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64)[None]
    assert abs(float(geodesic_distance(eye, tiny)) - 1e-9) < 1e-15


def test_dtype_and_device_follow_input():
    r = torch.zeros(4, 3, dtype=torch.float32)
    assert axis_angle_to_matrix(r).dtype == torch.float32
    assert matrix_to_axis_angle(axis_angle_to_matrix(r)).dtype == torch.float32
    assert rot6d_to_matrix(torch.randn(2, 6)).dtype == torch.float32


def test_does_not_modify_inputs(rng):
    r = torch.from_numpy(_random_rotvecs(rng, 10))
    before = r.clone()
    m = axis_angle_to_matrix(r)
    m_before = m.clone()
    matrix_to_axis_angle(m), matrix_to_rot6d(m), geodesic_distance(m, m)
    assert torch.equal(r, before) and torch.equal(m, m_before)


def test_finite_gradients_at_zero_and_pi():
    r = torch.tensor(
        [[0.0, 0.0, 0.0], [1e-8, 0, 0], [np.pi, 0, 0], [0, 0, np.pi - 1e-7]],
        dtype=torch.float64,
        requires_grad=True,
    )
    mats = axis_angle_to_matrix(r)
    back = matrix_to_axis_angle(mats)
    eye = torch.eye(3, dtype=torch.float64).expand_as(mats)
    loss = mats.sum() + back.sum() + geodesic_distance(mats, eye).sum()
    (g,) = torch.autograd.grad(loss, r)
    assert torch.isfinite(g).all()
    # d R / d r at 0 is the generator [e_k]_x: a known value.
    (g0,) = torch.autograd.grad(axis_angle_to_matrix(r[:1])[0, 2, 1], r)
    assert torch.allclose(g0[0], torch.tensor([1.0, 0, 0], dtype=torch.float64))


def test_gradcheck_float64(rng):
    r = torch.from_numpy(_random_rotvecs(rng, 3, 2.5)).requires_grad_(True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (r,))
    assert torch.autograd.gradcheck(lambda x: matrix_to_axis_angle(axis_angle_to_matrix(x)), (r,))
    x6 = torch.from_numpy(rng.normal(size=(3, 6))).requires_grad_(True)
    assert torch.autograd.gradcheck(rot6d_to_matrix, (x6,))


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ShapeError, match=r"\(\.\.\., 3\).*got \(4, 4\)"):
        axis_angle_to_matrix(torch.zeros(4, 4))
    with pytest.raises(ShapeError, match="rot6d"):
        rot6d_to_matrix(torch.zeros(5))
    with pytest.raises(ShapeError, match=r"3, 3"):
        matrix_to_axis_angle(torch.zeros(2, 3, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        axis_angle_to_matrix(np.zeros(3))
