"""RRT: only ``linear`` and sigma change; losses and reweighting built from the training ages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.age.train import load_age_checkpoint, train

from .conftest import tiny_config


def _rrt(tiny_run, name, kind, features="", epochs=2):
    return tiny_config(
        tiny_run["tmp"],
        tiny_run["csv"],
        stage="rrt",
        out=str(tiny_run["tmp"] / name),
        rrt={"pretrained": str(tiny_run["vanilla"]), "features": features},
        loss={"kind": kind},
        optim={"epochs": epochs, "batch_size": 64, "lr": 1e-2},
    )


@pytest.mark.parametrize("use_features", [False, True])
def test_rrt_changes_only_linear_and_sigma(tiny_run, use_features):
    name = "rrt_feat" if use_features else "rrt_img"
    cfg = _rrt(tiny_run, name, "bmc", features=str(tiny_run["features"]) if use_features else "")
    before, _ = load_age_checkpoint(tiny_run["vanilla"])
    best = train(cfg, log=lambda m: None).checkpoint
    after, payload = load_age_checkpoint(best)
    sb, sa = before.state_dict(), after.state_dict()
    for k in sb:
        if k.startswith("linear."):
            assert not torch.equal(sb[k], sa[k]), k
        else:  # backbone weights *and* BatchNorm running statistics are untouched
            assert torch.equal(sb[k], sa[k]), k
    sigma = payload["criterion"]["inner.noise_sigma"]
    assert float(sigma) != pytest.approx(10.0, abs=1e-6)  # learned from its init 10


def test_rrt_resume_matches_uninterrupted(tiny_run):
    from ihmr.runs import read_checkpoint

    feats = str(tiny_run["features"])
    full = train(_rrt(tiny_run, "gai_full", "gai", features=feats, epochs=3), log=lambda m: None)
    cut = _rrt(tiny_run, "gai_cut", "gai", features=feats, epochs=1)
    train(cut, log=lambda m: None)
    cut.optim.epochs = 3
    resumed = train(cut, resume=True, log=lambda m: None)
    a, b = read_checkpoint(full.run_dir / "last.pt"), read_checkpoint(resumed.run_dir / "last.pt")
    for k in a["state"]["linear"]:
        assert torch.equal(a["state"]["linear"][k], b["state"]["linear"][k])
    assert torch.equal(
        a["state"]["criterion"]["inner.noise_sigma"], b["state"]["criterion"]["inner.noise_sigma"]
    )
    with pytest.raises(Exception, match="--resume"):
        train(cut, log=lambda m: None)


def test_reweighting_weights_follow_inverse_counts():
    from ihmr.age.config import LossConfig
    from ihmr.age.criteria import build_criterion

    ages = np.repeat([20.0, 30.0, 40.0], [10, 40, 2000])
    crit = build_criterion(LossConfig(kind="inverse", lds=False), ages, (0, 120))
    w = crit.bin_weight.numpy()
    # independent: 1 / clip(count, 5, 1000), normalised to mean 1 over the training samples
    raw = {20: 1 / 10, 30: 1 / 40, 40: 1 / 1000}
    norm = (10 * raw[20] + 40 * raw[30] + 2000 * raw[40]) / 2050
    for age, r in raw.items():
        assert w[age] == pytest.approx(r / norm)
    pred = torch.tensor([21.0, 33.0, 40.5])
    y = torch.tensor([20.0, 30.0, 40.0])
    expect = (w[20] * 1 + w[30] * 9 + w[40] * 0.25) / 3
    assert float(crit(pred[:, None], y)) == pytest.approx(expect, rel=1e-5)


def test_bni_bins_are_integer_ages():
    from ihmr.age.config import LossConfig
    from ihmr.age.criteria import build_criterion

    crit = build_criterion(LossConfig(kind="bni"), np.array([3.0, 3.0, 5.0]), (0, 10))
    centers = crit.inner.bin_centers.reshape(-1).numpy()
    np.testing.assert_allclose(centers, np.arange(11))
    np.testing.assert_allclose(crit.inner.bin_weights.numpy()[[3, 5]], [2 / 3, 1 / 3], rtol=1e-6)


def test_rrt_follows_optim_milestones_and_leaves_sigma_rate_alone(tiny_run):
    """Stage 2 reads the one optim section: its step decay (optim.milestones) lowers linear's rate
    and never sigma's (optim.sigma_lr), and weight decay reaches linear only."""
    from ihmr.runs import read_checkpoint

    cfg = _rrt(tiny_run, "bmc_steps", "bmc", features=str(tiny_run["features"]), epochs=2)
    cfg.optim.milestones, cfg.optim.gamma, cfg.optim.weight_decay = [1], 0.1, 1e-3
    groups = read_checkpoint(train(cfg, log=lambda m: None).run_dir / "last.pt")["state"][
        "optimizer"
    ]["param_groups"]
    assert [g["lr"] for g in groups] == [pytest.approx(1e-3), pytest.approx(cfg.optim.sigma_lr)]
    assert [g["weight_decay"] for g in groups] == [1e-3, 0.0]
