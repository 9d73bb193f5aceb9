"""The IHMR loss composition (ihmr.pose.losses) against hand computations with plain loops."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from ihmr.errors import ConfigError, DataError
from ihmr.pose.losses import IHMRLoss, make_pose_criterion

B = 6


def _inputs(seed: int = 0, all_valid: bool = False):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    rot = r(B, 24, 3, 3) * 0.3
    betas = r(B, 10)
    cam = torch.stack([0.8 + 0.1 * r(B), 0.1 * r(B), 0.1 * r(B)], 1)
    joints49 = r(B, 49, 3) * 0.3
    valid = torch.tensor([1.0, 0, 1, 1, 0, 1], dtype=torch.float64)
    if all_valid:
        valid = torch.ones(B, dtype=torch.float64)
    kp3d = torch.cat(
        [r(B, 24, 3) * 0.3, torch.rand(B, 24, 1, generator=g, dtype=torch.float64)], -1
    )
    has3d = torch.tensor([1.0, 1, 0, 1, 1, 0], dtype=torch.float64)
    kp2d = torch.cat(
        [r(B, 49, 2) * 0.5, torch.rand(B, 49, 1, generator=g, dtype=torch.float64)], -1
    )
    batch = {
        "pose": r(B, 216) * 0.3,
        "betas": r(B, 10),
        "valid": valid,
        "kp3d": kp3d,
        "has3d": has3d,
        "kp2d": kp2d,
    }
    return rot, betas, cam, joints49, batch


def _hand_terms(rot, betas, cam, joints49, batch, openpose_weight=0.0):
    """Every term with explicit loops over samples and joints (numpy float64)."""
    R = rot.numpy().reshape(B, 216)
    b, c, J = betas.numpy(), cam.numpy(), joints49.numpy()
    P, G, valid = batch["pose"].numpy(), batch["betas"].numpy(), batch["valid"].numpy()
    nv = valid.sum()
    pose = sum(((R[i] - P[i]) ** 2).sum() for i in range(B) if valid[i]) / (nv * 216)
    bet = sum(((b[i] - G[i]) ** 2).sum() for i in range(B) if valid[i]) / (nv * 10)
    k3, h3 = batch["kp3d"].numpy(), batch["has3d"].numpy()
    acc = 0.0
    for i in range(B):
        if not h3[i]:
            continue
        gp = (k3[i, 2, :3] + k3[i, 3, :3]) / 2
        pp = (J[i, 25 + 2] + J[i, 25 + 3]) / 2
        for j in range(24):
            acc += k3[i, j, 3] * (((J[i, 25 + j] - pp) - (k3[i, j, :3] - gp)) ** 2).sum()
    kp3 = acc / (h3.sum() * 24 * 3)
    k2 = batch["kp2d"].numpy()
    acc = 0.0
    for i in range(B):
        tz = 2 * 5000.0 / (224 * c[i, 0] + 1e-9)
        for j in range(49):
            x, y, z = J[i, j] + np.array([c[i, 1], c[i, 2], tz])
            u, v = 5000.0 * x / z / 112.0, 5000.0 * y / z / 112.0
            w = openpose_weight if j < 25 else 1.0
            acc += w * k2[i, j, 2] * ((u - k2[i, j, 0]) ** 2 + (v - k2[i, j, 1]) ** 2)
    kp2 = acc / (B * 49 * 2)
    camp = np.mean([math.exp(-10 * c[i, 0]) ** 2 for i in range(B)])
    return {"pose": pose, "betas": bet, "keypoints3d": kp3, "keypoints2d": kp2, "cam": camp}


def _logsumexp(a):
    m = max(a)
    return m + math.log(sum(math.exp(x - m) for x in a))


def test_mse_composition_matches_hand_computation():
    rot, betas, cam, joints49, batch = _inputs()
    loss = IHMRLoss("mse", {"openpose": 0.5}).double()
    got = loss(rot, betas, cam, joints49, batch)
    want = _hand_terms(rot, betas, cam, joints49, batch, openpose_weight=0.5)
    weights = {"pose": 60, "betas": 0.06, "keypoints3d": 300, "keypoints2d": 300, "cam": 60}
    for k, w in weights.items():
        assert got[k].item() == pytest.approx(w * want[k], rel=1e-4), k
    assert got["total"].item() == pytest.approx(
        sum(w * want[k] for k, w in weights.items()), rel=1e-4
    )


def test_openpose_weight_zero_ignores_openpose_joints():
    rot, betas, cam, joints49, batch = _inputs()
    loss = IHMRLoss("mse").double()
    a = loss(rot, betas, cam, joints49, batch)["keypoints2d"]
    batch["kp2d"][:, :25, :2] += 5.0  # only OpenPose joints change
    assert loss(rot, betas, cam, joints49, batch)["keypoints2d"].item() == pytest.approx(a.item())


@pytest.mark.parametrize("kind", ["bmc", "bmc_mmhuman3d"])
def test_bmc_pose_term_matches_hand_computation(kind):
    rot, betas, cam, joints49, batch = _inputs(1, all_valid=True)
    sigma = 0.7
    crit = make_pose_criterion(kind, init_noise_sigma=sigma, gather=False).double()
    loss = IHMRLoss(kind, criterion=crit, all_valid=True).double()
    got = loss(rot, betas, cam, joints49, batch)["pose"].item()
    p, y, v = rot.numpy().reshape(B, 216), batch["pose"].numpy(), sigma**2
    per = []
    for i in range(B):
        lse = _logsumexp([-((p[i] - y[j]) ** 2).sum() / (2 * v) for j in range(B)])
        sq = ((p[i] - y[i]) ** 2).sum()
        if kind == "bmc":  # 60 * 2v (T1 + T2) / 216, Eq. 3.14
            per.append(60 * (sq + 2 * v * lse) / 216)
        else:  # released: [60 |p-y|^2 / v + 5 LSE] v / 216
            per.append((60 * sq / v + 5 * lse) * v / 216)
    assert got == pytest.approx(np.mean(per), rel=1e-6)


def test_gai_pose_term_matches_scipy():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    k, d = 2, 216
    a = rng.normal(size=(k, d, d)) * 0.05
    prior = types.SimpleNamespace(
        weights=np.array([0.3, 0.7]),
        means=rng.normal(size=(k, d)) * 0.2,
        covariances=a @ a.transpose(0, 2, 1) + 0.01 * np.eye(d),
    )
    rot, betas, cam, joints49, batch = _inputs(2)
    sigma = 0.5
    crit = make_pose_criterion("gai", prior=prior, init_noise_sigma=sigma).double()
    loss = IHMRLoss("gai", criterion=crit).double()
    got = loss(rot, betas, cam, joints49, batch)["pose"].item()
    p, y, v = rot.numpy().reshape(B, 216), batch["pose"].numpy(), sigma**2
    per = []
    for i in np.flatnonzero(batch["valid"].numpy()):  # invalid fits are left out
        nll = -multivariate_normal.logpdf(y[i], p[i], v * np.eye(d))
        integral = _logsumexp(
            [
                math.log(prior.weights[c])
                + multivariate_normal.logpdf(
                    p[i], prior.means[c], prior.covariances[c] + v * np.eye(d)
                )
                for c in range(k)
            ]
        )
        per.append(60 * 2 * v * (nll + integral) / 216)
    assert got == pytest.approx(np.mean(per), rel=1e-6)


def test_prior_of_wrong_dimension_is_a_clear_error():
    prior = types.SimpleNamespace(
        weights=np.ones(2) / 2, means=np.zeros((2, 72)), covariances=np.tile(np.eye(72), (2, 1, 1))
    )
    with pytest.raises(DataError, match=r"dimension 72.*216.*--pose-to-rotmat"):
        make_pose_criterion("gai", prior=prior)
    with pytest.raises(ConfigError, match="loss.prior"):
        make_pose_criterion("gai", prior=None)


def test_gradients_reach_sigma_and_predictions():
    rot, betas, cam, joints49, batch = _inputs(3, all_valid=True)
    rot = rot.float().requires_grad_()
    batch = {k: v.float() for k, v in batch.items()}
    crit = make_pose_criterion("bmc", init_noise_sigma=1.0, gather=False)
    loss = IHMRLoss("bmc", criterion=crit, all_valid=True)
    loss(rot, betas.float(), cam.float(), joints49.float(), batch)["total"].backward()
    assert rot.grad.abs().sum() > 0 and crit.noise_sigma.grad is not None
    assert torch.isfinite(crit.noise_sigma.grad)


def test_unknown_weight_and_missing_criterion_rejected():
    with pytest.raises(ConfigError, match="unknown loss weight"):
        IHMRLoss("mse", {"keypoint3d": 1.0})
    with pytest.raises(ConfigError, match="needs a balanced criterion"):
        IHMRLoss("bmc")


def test_balanced_keypoint_terms_match_scipy_densities():
    """keypoints="bmc": each keypoint term is 2v (-log N_i(y_i) + log sum_j N_j(y_j)) / d over the
    rows with data, N_j the density of target j's confident coordinates (variance v / conf)."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    from ihmr.pose.losses import make_keypoint_criteria, project_joints

    rot, betas, cam, joints49, batch = _inputs(4, all_valid=True)
    batch["kp2d"][1, :, 2] = 0.0  # a sample without any 2-D joint
    batch["kp3d"][0, 5, 3] = 0.0  # a missing 3-D joint
    s3, s2 = 0.3, 0.2
    kp = make_keypoint_criteria("bmc", init_noise_sigma=(s3, s2), gather=False)
    loss = IHMRLoss("mse", keypoint_criteria=tuple(c.double() for c in kp)).double()
    got = loss(rot, betas, cam, joints49, batch)

    def balanced(p, y, w, v):
        has = (w > 0).any(1)
        rows = []
        for i in np.flatnonzero(has):
            logn = {
                j: norm.logpdf(y[j, w[j] > 0], p[i, w[j] > 0], np.sqrt(v / w[j, w[j] > 0])).sum()
                for j in np.flatnonzero(has)
            }
            rows.append(2 * v * (-logn[i] + logsumexp(list(logn.values()))) / p.shape[1])
        return np.mean(rows)

    k3 = batch["kp3d"].numpy()
    j = joints49[:, 25:].numpy()
    pc = (j - (j[:, 2:3] + j[:, 3:4]) / 2).reshape(B, 72)
    yc = (k3[..., :3] - (k3[:, 2:3, :3] + k3[:, 3:4, :3]) / 2).reshape(B, 72)
    w3 = np.repeat(k3[..., 3:4] * batch["has3d"].numpy()[:, None, None], 3, -1).reshape(B, 72)
    assert got["keypoints3d"].item() == pytest.approx(300 * balanced(pc, yc, w3, s3**2), rel=1e-6)
    k2 = batch["kp2d"].numpy()
    p2 = project_joints(joints49, cam).numpy().reshape(B, 98)
    scale = np.r_[np.zeros(25), np.ones(24)][None, :, None]  # OpenPose joints: weight 0
    w2 = np.repeat(k2[..., 2:3] * scale, 2, -1).reshape(B, 98)
    assert got["keypoints2d"].item() == pytest.approx(
        300 * balanced(p2, k2[..., :2].reshape(B, 98), w2, s2**2), rel=1e-6
    )
    assert set(loss.sigmas()) == {"sigma_kp3d", "sigma_kp2d"}


def test_keypoint_choice_and_sigma_errors_name_the_option():
    from ihmr.pose.losses import make_keypoint_criteria

    with pytest.raises(ConfigError, match="loss.keypoints"):
        make_keypoint_criteria("gai")
    with pytest.raises(ConfigError, match="keypoints2d_init_noise_sigma"):
        make_keypoint_criteria("bmc", init_noise_sigma=(0.1, 0.0))
    assert make_keypoint_criteria("mse") is None


def test_per_joint_bmc_matches_a_loop_over_joints():
    """loss.bmc_per_joint: the pose term is 60 x the mean over samples of sum over the 24 joints
    of 2v (T1 + T2) / 216, each joint's log-sum-exp over the same joint of the batch's labels;
    the keypoint terms per joint likewise, with each joint's confidence (missing joints leave
    that joint's sum only)."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    from ihmr.pose.losses import make_keypoint_criteria, project_joints

    rot, betas, cam, joints49, batch = _inputs(5, all_valid=True)
    batch["kp3d"][0, 5, 3] = 0.0  # a missing 3-D joint
    sigma, s3, s2 = 0.4, 0.3, 0.2
    crit = make_pose_criterion("bmc", init_noise_sigma=sigma, gather=False, per_joint=True)
    kp = make_keypoint_criteria("bmc", init_noise_sigma=(s3, s2), gather=False, per_joint=True)
    loss = IHMRLoss(
        "bmc",
        criterion=crit.double(),
        all_valid=True,
        keypoint_criteria=tuple(c.double() for c in kp),
    ).double()
    got = loss(rot, betas, cam, joints49, batch)

    def per_joint(p, y, w, v, m):
        """mean over rows with data of sum_g 2v (-log N(y_ig) + log sum_j N(y_jg)) / d."""
        n, d = p.shape
        rows = []
        for i in range(n):
            acc, used = 0.0, False
            for g in range(d // m):
                c = slice(g * m, (g + 1) * m)
                if not (w[i, c] > 0).any():
                    continue
                used = True
                logn = {}
                for j in range(n):
                    k = w[j, c] > 0
                    if k.any():
                        logn[j] = norm.logpdf(y[j, c][k], p[i, c][k], np.sqrt(v / w[j, c][k])).sum()
                acc += -logn[i] + logsumexp(list(logn.values()))
            if used:
                rows.append(2 * v * acc / d)
        return np.mean(rows)

    p, y = rot.numpy().reshape(B, 216), batch["pose"].numpy()
    assert got["pose"].item() == pytest.approx(
        60 * per_joint(p, y, np.ones_like(p), sigma**2, 9), rel=1e-6
    )
    k3 = batch["kp3d"].numpy()
    j = joints49[:, 25:].numpy()
    pc = (j - (j[:, 2:3] + j[:, 3:4]) / 2).reshape(B, 72)
    yc = (k3[..., :3] - (k3[:, 2:3, :3] + k3[:, 3:4, :3]) / 2).reshape(B, 72)
    w3 = np.repeat(k3[..., 3:4] * batch["has3d"].numpy()[:, None, None], 3, -1).reshape(B, 72)
    assert got["keypoints3d"].item() == pytest.approx(
        300 * per_joint(pc, yc, w3, s3**2, 3), rel=1e-6
    )
    k2 = batch["kp2d"].numpy()
    p2 = project_joints(joints49, cam).numpy().reshape(B, 98)
    scale = np.r_[np.zeros(25), np.ones(24)][None, :, None]
    w2 = np.repeat(k2[..., 2:3] * scale, 2, -1).reshape(B, 98)
    assert got["keypoints2d"].item() == pytest.approx(
        300 * per_joint(p2, k2[..., :2].reshape(B, 98), w2, s2**2, 2), rel=1e-6
    )
    # and it is not the whole-vector BMC
    whole = make_pose_criterion("bmc", init_noise_sigma=sigma, gather=False).double()
    assert IHMRLoss("bmc", criterion=whole, all_valid=True).double()(
        rot, betas, cam, joints49, batch
    )["pose"].item() != pytest.approx(got["pose"].item(), rel=1e-3)


def test_per_joint_needs_a_bmc(tmp_path):
    from ihmr.pose.config import PoseTrainConfig
    from ihmr.pose.train import build_loss

    with pytest.raises(ConfigError, match="bmc_mmhuman3d"):
        make_pose_criterion("bmc_mmhuman3d", per_joint=True)
    assert make_pose_criterion("mse", per_joint=True) is None  # only BMC changes
    cfg = PoseTrainConfig()
    cfg.loss.bmc_per_joint = True
    with pytest.raises(ConfigError, match="loss.bmc_per_joint needs a BMC"):
        build_loss(cfg, all_valid=True)


def test_per_joint_2d_keypoints_with_openpose_joints():
    """With openpose_weight > 0 the 2-D term balances all 49 joints (49 blocks); with 0 the 25
    OpenPose joints are left out before the loss, which does not change the value."""
    from ihmr.losses import bmc_loss
    from ihmr.pose.losses import make_keypoint_criteria, project_joints

    rot, betas, cam, joints49, batch = _inputs(6, all_valid=True)
    p2 = project_joints(joints49, cam).reshape(B, 98)
    y2 = batch["kp2d"][..., :2].reshape(B, 98)
    for op in (0.0, 0.5):
        kp = make_keypoint_criteria(
            "bmc", init_noise_sigma=(0.3, 0.2), gather=False, per_joint=True, openpose_weight=op
        )
        loss = IHMRLoss(
            "mse", weights={"openpose": op}, keypoint_criteria=tuple(c.double() for c in kp)
        ).double()
        got = loss(rot, betas, cam, joints49, batch)["keypoints2d"]
        scale = torch.cat([torch.full((25, 1), op), torch.ones(24, 1)]).double()
        w = (batch["kp2d"][..., 2:3] * scale).expand(B, 49, 2).reshape(B, 98)
        want = 300 * bmc_loss(p2, y2, 0.04, target_weight=w, groups=49, normalize_by_dim=True)
        assert got.item() == pytest.approx(want.item(), rel=1e-6)  # the loss runs in float32
