"""Pose metrics against a naive per-sample NumPy implementation written here, independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from ihmr.errors import ShapeError
from ihmr.metrics.pose import mpjpe, mpvpe, pa_mpjpe, pose_errors, procrustes_align

# SPIN's H36M -> LSP-14 selection, written out again here on purpose.
LSP14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]


def naive_mpjpe(pred, gt):
    out = []
    for p, g in zip(pred, gt, strict=True):
        p = p - p[0]
        g = g - g[0]
        out.append(1000 * np.mean([np.linalg.norm(p[k] - g[k]) for k in LSP14]))
    return np.array(out)


def umeyama(src, dst):
    """Similarity (s, R, t) minimising |s R src + t - dst|^2, reflections excluded."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sgn = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sgn[2, 2] = -1
    rot = u @ sgn @ vt
    var = (a**2).sum() / len(src)
    s = np.trace(np.diag(d) @ sgn) / var
    return s, rot, mu_d - s * rot @ mu_s


def naive_pa_mpjpe(pred, gt):
    out = []
    for p, g in zip(pred, gt, strict=True):
        p, g = p[LSP14], g[LSP14]
        s, rot, t = umeyama(p, g)
        aligned = (s * (rot @ p.T)).T + t
        out.append(1000 * np.linalg.norm(aligned - g, axis=1).mean())
    return np.array(out)


@pytest.fixture
def skeletons(rng):
    gt = rng.normal(size=(40, 17, 3)) * 0.3
    pred = gt + rng.normal(size=gt.shape) * 0.05
    return pred, gt


def test_mpjpe_matches_naive(skeletons):
    pred, gt = skeletons
    np.testing.assert_allclose(mpjpe(pred, gt), naive_mpjpe(pred, gt), rtol=1e-12)


def test_pa_mpjpe_matches_naive_umeyama(skeletons):
    pred, gt = skeletons
    np.testing.assert_allclose(pa_mpjpe(pred, gt), naive_pa_mpjpe(pred, gt), rtol=1e-9)


def test_pa_mpjpe_removes_similarity_but_not_reflection(rng, skeletons):
    _, gt = skeletons
    rot = Rotation.random(len(gt), random_state=1).as_matrix()
    moved = 1.7 * np.einsum("bij,bkj->bki", rot, gt) + rng.normal(size=(len(gt), 1, 3))
    assert np.abs(pa_mpjpe(moved, gt)).max() < 1e-9
    assert mpjpe(moved, gt).min() > 1.0  # unaligned error stays
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # a reflection is not a rotation
    np.testing.assert_allclose(pa_mpjpe(mirrored, gt), naive_pa_mpjpe(mirrored, gt), rtol=1e-9)
    assert pa_mpjpe(mirrored, gt).min() > 1.0


def test_mpjpe_ignores_translation_and_unused_joints(skeletons):
    pred, gt = skeletons
    shifted = pred + np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(mpjpe(shifted, gt), mpjpe(pred, gt), rtol=1e-12)
    odd = pred.copy()
    odd[:, [7, 9]] += 5.0  # spine and neck/nose are not among the 14 joints
    np.testing.assert_allclose(mpjpe(odd, gt), mpjpe(pred, gt), rtol=1e-12)


def test_one_exactly_known_value():
    gt = np.zeros((1, 17, 3))
    pred = gt.copy()
    pred[0, 1:, 0] = 0.010  # every non-pelvis joint 10 mm off along x
    assert mpjpe(pred, gt)[0] == pytest.approx(10.0)
    verts = np.zeros((1, 5, 3))
    assert mpvpe(verts + np.array([0.003, 0.004, 0.0]), verts)[0] == pytest.approx(5.0)


def test_mpvpe_matches_naive(rng):
    gt = rng.normal(size=(6, 50, 3))
    pred = gt + rng.normal(size=gt.shape) * 0.01
    ref = [
        1000 * np.mean([np.linalg.norm(p - g) for p, g in zip(pv, gv, strict=True)])
        for pv, gv in zip(pred, gt, strict=True)
    ]
    np.testing.assert_allclose(mpvpe(pred, gt), ref, rtol=1e-12)


def test_torch_in_torch_out_float32(skeletons):
    pred, gt = (torch.from_numpy(x).float() for x in skeletons)
    for fn in (mpjpe, pa_mpjpe):
        out = fn(pred, gt)
        assert torch.is_tensor(out) and out.shape == (40,)
        np.testing.assert_allclose(out.double().numpy(), fn(*skeletons), rtol=1e-4, atol=1e-3)


def test_procrustes_is_batched_svd_of_each_sample(skeletons):
    pred, gt = (torch.from_numpy(x) for x in skeletons)
    aligned = procrustes_align(pred, gt)
    for i in (0, 17):
        s, rot, t = umeyama(pred[i].numpy(), gt[i].numpy())
        np.testing.assert_allclose(
            aligned[i].numpy(), (s * (rot @ pred[i].numpy().T)).T + t, atol=1e-12
        )


def test_pose_errors_on_body_outputs(skeletons, rng):
    from ihmr.body import BodyOutput

    pred, gt = (torch.from_numpy(x) for x in skeletons)
    vg = torch.from_numpy(rng.normal(size=(40, 20, 3)))
    z = torch.zeros(40, 24, 3)
    errs = pose_errors(BodyOutput(vg + 0.001, z, pred, z), BodyOutput(vg, z, gt, z))
    assert set(errs) == {"mpjpe", "pa_mpjpe", "mpvpe"}
    torch.testing.assert_close(errs["mpvpe"], torch.full((40,), 3**0.5, dtype=torch.float64))


def test_shape_errors():
    with pytest.raises(ShapeError, match=r"\(B, 17, 3\).*got \(2, 14, 3\)"):
        mpjpe(np.zeros((2, 14, 3)), np.zeros((2, 14, 3)))
    with pytest.raises(ShapeError, match="same shape"):
        mpvpe(np.zeros((2, 5, 3)), np.zeros((2, 6, 3)))
