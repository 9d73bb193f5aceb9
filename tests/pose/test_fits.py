"""Static fits as training labels: the release's 2-D fitting loss and validity rule.

The loss is checked against a plain numpy re-derivation (SPIN's tiled least-squares layout for
the camera translation, loops for the Geman-McClure sum) and against an exactly known case (the
keypoints are the fit's own projection: translation recovered, loss 0). The rule is checked
through ``load_train_set`` on files laid out like SPIN's (dataset_extras npz + static fits npy).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.body.testing import write_smpl_folder
from ihmr.pose.config import DatasetConfig
from ihmr.pose.fits import IGNORED_KEYPOINTS, estimate_translation, fitting_loss


def _translation_np(S, kp, conf, f=5000.0, c=112.0):
    """One sample, SPIN's layout: Q rows [F, 0, O - u], [0, F, O - v], W = diag(sqrt(conf))."""
    n = len(S)
    Z = np.repeat(S[:, 2], 2)
    XY = S[:, :2].reshape(-1)
    O = np.full(2 * n, c)  # noqa: E741 - SPIN names the principal point O
    F = np.full(2 * n, f)
    w = np.repeat(np.sqrt(conf), 2)
    Q = np.stack([F * np.tile([1, 0], n), F * np.tile([0, 1], n), O - kp.reshape(-1)], 1)
    cc = (kp.reshape(-1) - O) * Z - F * XY
    Q, cc = Q * w[:, None], cc * w
    return np.linalg.solve(Q.T @ Q, Q.T @ cc)


def _loss_np(j49, kp_crop):
    px = (kp_crop[:, :2] + 1) * 112.0
    conf = kp_crop[:, 2]
    t = _translation_np(j49[25:], px[25:], conf[25:])
    total = 0.0
    for j in range(49):
        if j in IGNORED_KEYPOINTS:
            continue
        p = j49[j] + t
        for a in range(2):
            proj = 5000.0 * p[a] / p[2] + 112.0
            d = (2 * proj / 223 - 1 - (2 * px[j, a] / 223 - 1)) ** 2
            total += conf[j] * 1e4 * d * d / (1e4 + d * d)
    return total


def _joints(rng, n):
    return torch.tensor(rng.normal(0, 0.4, (n, 49, 3)) * [1, 1, 0.2])


def test_loss_matches_numpy_rederivation(rng):
    j49 = _joints(rng, 6)
    kp = torch.tensor(
        np.concatenate([rng.uniform(-0.9, 0.9, (6, 49, 2)), rng.uniform(0, 1, (6, 49, 1))], -1)
    )
    kp[0, 30:, 2] = 0  # some invisible ground-truth joints
    got = fitting_loss(j49, kp).numpy()
    want = [_loss_np(j49[i].numpy(), kp[i].numpy()) for i in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert (got > 10).any()  # random keypoints are bad fits


def test_exact_projection_recovers_translation_and_zero_loss(rng):
    j49 = _joints(rng, 4)
    t0 = torch.tensor(
        [[0.1, -0.05, 40.0], [0.0, 0.2, 55.0], [-0.2, 0.1, 48.0], [0, 0, 60.0]], dtype=torch.float64
    )
    p = j49 + t0[:, None]
    px = 5000.0 * p[..., :2] / p[..., 2:3] + 112.0
    kp = torch.cat([px / 112.0 - 1, torch.ones(4, 49, 1, dtype=torch.float64)], -1)
    np.testing.assert_allclose(
        estimate_translation(j49[:, 25:], px[:, 25:], torch.ones(4, 24)).numpy(),
        t0.numpy(),
        rtol=1e-9,
        atol=1e-9,
    )
    assert fitting_loss(j49, kp).abs().max() < 1e-12
    # the ignored OpenPose keypoints may be anywhere (the ignored hips still place the camera)
    kp[:, [1, 9, 12], :2] += 0.5
    assert fitting_loss(j49, kp).abs().max() < 1e-12
    kp[:, [27, 28], 0] += 0.3
    assert fitting_loss(j49, kp).min() > 1e-6
    # no visible ground-truth joint: no translation, never a valid fit
    kp[0, 25:, 2] = 0
    assert torch.isnan(fitting_loss(j49, kp)[0])


def _spin_files(root, body, rng):
    """lspet-like 2-D dataset with static fits (6 samples) and an mpi_inf_3dhp-like one whose
    samples 0 and 1 have GT SMPL (4 samples), in SPIN's formats, plus view-0 feature stores."""
    from ihmr.pose.features import write_feature_store
    from ihmr.pose.spin_data import labels_fingerprint

    from .helpers import rodrigues

    def write(name, n, fits, keypoint_offset, extra):
        pose = fits[:, :72]
        betas = torch.tensor(fits[:, 72:], dtype=torch.float32)
        rot = rodrigues(torch.tensor(pose, dtype=torch.float32).reshape(n, 24, 3))
        j49 = body.joints_only(betas, rot).joints49.double()
        t = torch.tensor([0.05, -0.02, 45.0], dtype=torch.float64)
        px = (5000.0 * (j49 + t)[..., :2] / (j49 + t)[..., 2:3] + 112.0).numpy()
        # keypoints off their fit by +-offset px, alternating per joint and axis (a pattern no
        # camera translation absorbs); the loss grows like offset^4 (about 88 (2 off / 223)^4)
        sign = np.where((np.arange(49)[:, None] + np.arange(2)[None]) % 2, 1.0, -1.0)
        px = px + keypoint_offset[:, None, None] * sign
        ones = lambda k: np.ones((n, k, 1))  # noqa: E731
        imgname = np.array([f"{name}/{i:04d}.jpg" for i in range(n)])
        np.savez(
            root / f"{name}.npz",
            imgname=imgname,
            center=np.full((n, 2), 112.0),
            scale=np.full(n, 1.12),
            part=np.concatenate([px[:, 25:], ones(24)], -1),
            openpose=np.concatenate([px[:, :25], ones(25)], -1),
            **extra,
        )
        np.save(root / f"{name}_fits.npy", fits)
        write_feature_store(
            root / f"{name}_feats",
            rng.normal(size=(n, 8)).astype(np.float16),
            dataset=name,
            labels_fingerprint=labels_fingerprint(imgname),
            source_checkpoint="t",
            source_fingerprint="s",
        )
        return DatasetConfig(name, f"{name}.npz", f"{name}_feats", fits=f"{name}_fits.npy")

    fits = np.concatenate([rng.normal(0, 0.2, (6, 72)), rng.normal(0, 0.5, (6, 10))], 1)
    fits[2, 75] = -3.5  # an extreme beta: the fit's betas are zeroed
    lspet = write("hr-lspet_train", 6, fits, np.array([0, 3, 0, 35, 0, 100.0]), {})
    fits3 = np.concatenate([rng.normal(0, 0.2, (4, 72)), rng.normal(0, 0.5, (4, 10))], 1)
    gt_pose, gt_betas = rng.normal(0, 0.2, (4, 72)), rng.normal(0, 0.5, (4, 10))
    gt_betas[0, 0] = 4.0  # GT betas are never zeroed
    mpi = write(
        "mpi_inf_3dhp_train",
        4,
        fits3,
        np.array([100.0, 0, 0, 100.0]),
        {
            "pose": gt_pose,
            "shape": gt_betas,
            "has_smpl": np.array([1, 1, 0, 0]),
            "S": np.concatenate([rng.normal(0, 0.3, (4, 24, 3)), ones4(4)], -1),
        },
    )
    return [lspet, mpi], fits, fits3, gt_pose, gt_betas


def ones4(n):
    return np.ones((n, 24, 1))


@pytest.fixture(scope="module")
def smpl_body(tmp_path_factory):
    from ihmr.body import load_body

    folder = write_smpl_folder(tmp_path_factory.mktemp("smpl"), n_vertices=200)
    return load_body("neutral", folder)


def test_release_rule_through_load_train_set(tmp_path, rng, smpl_body):
    from ihmr.pose.train_data import load_train_set

    from .helpers import rodrigues

    ds, fits, fits3, gt_pose, gt_betas = _spin_files(tmp_path, smpl_body, rng)

    def rotm(p):
        return (
            rodrigues(torch.tensor(p, dtype=torch.float32).reshape(-1, 24, 3))
            .reshape(-1, 216)
            .numpy()
        )

    ts = load_train_set(ds, tmp_path, body=smpl_body)
    lab = {k: v.numpy() for k, v in ts.labels.items()}
    # lspet: samples 3 and 5 have keypoints 35 / 100 px off their fit: loss >= 10, not labels
    np.testing.assert_array_equal(lab["valid"][:6], [1, 1, 1, 0, 1, 0])
    np.testing.assert_allclose(lab["pose"][:6], rotm(fits[:, :72]), atol=1e-5)
    want_b = fits[:, 72:].copy()
    want_b[2] = 0.0
    np.testing.assert_allclose(lab["betas"][:6], want_b, atol=1e-6)
    # mpi_inf_3dhp: GT SMPL preferred and valid even with bad keypoints (sample 0)
    np.testing.assert_array_equal(lab["valid"][6:], [1, 1, 1, 0])
    np.testing.assert_allclose(lab["pose"][6:8], rotm(gt_pose[:2]), atol=1e-5)
    np.testing.assert_allclose(lab["pose"][8:], rotm(fits3[2:, :72]), atol=1e-5)
    np.testing.assert_allclose(lab["betas"][6:8], gt_betas[:2], atol=1e-6)
    assert not ts.all_valid
    # the thresholds are settings: .inf takes every fit (and zeroes no betas)
    every = load_train_set(
        ds, tmp_path, body=smpl_body, fit_loss_threshold=float("inf"), fit_betas_limit=float("inf")
    )
    assert every.all_valid
    np.testing.assert_allclose(every.labels["betas"][:6].numpy(), fits[:, 72:], atol=1e-6)
    # a looser threshold (SPIN's value, 100) admits the 35 px fit but not the 100 px one
    spin = load_train_set(ds, tmp_path, body=smpl_body, fit_loss_threshold=100.0)
    assert spin.labels["valid"][3] == 1 and spin.labels["valid"][5] == 0


def test_pose_config_defaults_are_the_release_values():
    from ihmr.pose.config import PoseTrainConfig

    d = PoseTrainConfig().data
    assert (d.fit_loss_threshold, d.fit_betas_limit) == (10.0, 3.0)
