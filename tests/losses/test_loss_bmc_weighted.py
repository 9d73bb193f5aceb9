"""BMC with per-coordinate target weights (keypoint confidences): scipy densities, masks, grads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm

from ihmr.losses import BMCLoss, bmc_loss


def naive_weighted_nll(p: np.ndarray, y: np.ndarray, w: np.ndarray, v: float) -> np.ndarray:
    """Per sample: -log N_i(y_i; p_i) + log sum_j N_j(y_j; p_i), where N_j is the density of
    target j's observed coordinates (w > 0), coordinate k with variance v / w_jk (scipy)."""
    b = len(p)
    out = np.full(b, np.nan)
    has = (w > 0).any(1)
    for i in range(b):
        if not has[i]:
            continue
        logn = []
        for j in range(b):
            if not has[j]:
                continue
            k = w[j] > 0
            logn.append((j, norm.logpdf(y[j, k], p[i, k], np.sqrt(v / w[j, k])).sum()))
        own = dict(logn)[i]
        out[i] = -own + logsumexp([t for _, t in logn])
    return out


def _data(seed: int, b: int = 7, d: int = 5, missing: float = 0.3):
    g = np.random.default_rng(seed)
    p, y = g.normal(size=(b, d)), g.normal(size=(b, d))
    w = g.uniform(0.3, 2.0, (b, d)) * (g.random((b, d)) > missing)
    w[2] = 0.0  # one target with no observed coordinate
    return p, y, w


@pytest.mark.parametrize("v", [0.3, 1.7])
def test_matches_scipy_densities(v):
    p, y, w = _data(0)
    got = bmc_loss(
        torch.tensor(p), torch.tensor(y), v, target_weight=torch.tensor(w), reduction="none"
    ).numpy()
    want = 2 * v * naive_weighted_nll(p, y, w, v)
    assert got[2] == 0.0  # the row without data gives 0
    keep = np.arange(7) != 2
    np.testing.assert_allclose(got[keep], want[keep], rtol=1e-10)
    mean = bmc_loss(torch.tensor(p), torch.tensor(y), v, target_weight=torch.tensor(w))
    assert math.isclose(float(mean), want[keep].mean(), rel_tol=1e-10)  # mean over rows with data
    normed = bmc_loss(
        torch.tensor(p), torch.tensor(y), v, target_weight=torch.tensor(w), normalize_by_dim=True
    )
    assert math.isclose(float(normed), want[keep].mean() / 5, rel_tol=1e-10)


def test_unit_weights_equal_unweighted_and_missing_target_is_dropped():
    p, y, _ = _data(1)
    pt, yt = torch.tensor(p), torch.tensor(y)
    ones = torch.ones_like(yt)
    torch.testing.assert_close(
        bmc_loss(pt, yt, 0.5, target_weight=ones, reduction="none"),
        bmc_loss(pt, yt, 0.5, reduction="none"),
    )
    # zeroing every coordinate of target 2 equals running the batch without sample 2
    w = ones.clone()
    w[2] = 0
    got = bmc_loss(pt, yt, 0.5, target_weight=w, reduction="none")
    keep = torch.arange(7) != 2
    torch.testing.assert_close(got[keep], bmc_loss(pt[keep], yt[keep], 0.5, reduction="none"))


def test_prediction_gradient_is_mse_scale_and_gradcheck():
    p, y, w = _data(2, b=5, d=3)
    pt = torch.tensor(p, requires_grad=True)
    wt = torch.tensor(w)
    assert torch.autograd.gradcheck(
        lambda a: bmc_loss(a, torch.tensor(y), 0.8, target_weight=wt), (pt,)
    )
    # sigma's gradient is 2v times that of the balanced NLL (the value is (2v).detach() * NLL)
    v = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    (gv,) = torch.autograd.grad(bmc_loss(pt.detach(), torch.tensor(y), v, target_weight=wt), v)
    keep = (w > 0).any(1)
    nll = lambda s: naive_weighted_nll(p, y, w, s)[keep].mean()  # noqa: E731
    h = 1e-6
    assert math.isclose(float(gv), 1.6 * (nll(0.8 + h) - nll(0.8 - h)) / (2 * h), rel_tol=1e-6)
    # without the balancing term the prediction gradient is the weighted MSE's
    big = bmc_loss(pt, torch.tensor(y), 0.3, target_weight=wt, reduction="sum", balance_weight=0.0)
    (g,) = torch.autograd.grad(big, pt)
    has = torch.tensor((w > 0).any(1), dtype=torch.float64)[:, None]
    want = 2 * wt * (pt.detach() - torch.tensor(y)) * has
    torch.testing.assert_close(g, want, rtol=1e-10, atol=1e-12)


def test_no_target_with_data_is_zero_and_finite():
    pt = torch.randn(4, 3, requires_grad=True)
    loss = bmc_loss(pt, torch.randn(4, 3), 0.5, target_weight=torch.zeros(4, 3))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(pt.grad).all() and (pt.grad == 0).all()


def test_module_and_bad_weights():
    p, y, w = _data(3)
    crit = BMCLoss(0.7, learn_noise=False, normalize_by_dim=True)
    want = bmc_loss(
        torch.tensor(p), torch.tensor(y), 0.49, target_weight=torch.tensor(w), normalize_by_dim=True
    )
    torch.testing.assert_close(
        crit(torch.tensor(p), torch.tensor(y), torch.tensor(w)).double(), want
    )
    with pytest.raises(ValueError, match="target_weight must be >= 0"):
        bmc_loss(torch.tensor(p), torch.tensor(y), 0.5, target_weight=-torch.tensor(w))
    with pytest.raises(ValueError, match="same shape"):
        bmc_loss(torch.tensor(p), torch.tensor(y), 0.5, target_weight=torch.ones(7, 2))
