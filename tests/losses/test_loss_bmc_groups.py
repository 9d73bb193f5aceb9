"""BMC per block (``groups=G``): scipy densities per block, the whole-label BMC per block,
gradients, masks, and bad arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm

from ihmr.errors import ConfigError
from ihmr.losses import BMCLoss, bmc_loss


def naive_grouped_nll(p, y, w, v, groups):
    """Per sample, summed over blocks g: -log N(y_ig; p_ig) + log sum_j N(y_jg; p_ig), each
    density over the block's observed coordinates (w > 0) with variance v / w (scipy); a block
    missing from target j leaves j out of that block's sum, a block missing from the own target
    adds nothing. NaN for a row with no observed block."""
    b, d = p.shape
    m = d // groups
    out = np.zeros(b)
    any_block = np.zeros(b, bool)
    for i in range(b):
        for g in range(groups):
            cols = slice(g * m, (g + 1) * m)
            if not (w[i, cols] > 0).any():
                continue
            any_block[i] = True
            logn = {}
            for j in range(b):
                k = w[j, cols] > 0
                if not k.any():
                    continue
                yj, pj, wj = y[j, cols][k], p[i, cols][k], w[j, cols][k]
                logn[j] = norm.logpdf(yj, pj, np.sqrt(v / wj)).sum()
            out[i] += -logn[i] + logsumexp(list(logn.values()))
    out[~any_block] = np.nan
    return out


def _data(seed, b=6, groups=3, m=3, missing=0.0):
    g = np.random.default_rng(seed)
    d = groups * m
    p, y = g.normal(size=(b, d)), g.normal(size=(b, d))
    w = np.repeat(g.uniform(0.5, 1.5, (b, groups)), m, 1)  # one confidence per block (joint)
    if missing:
        w *= np.repeat(g.random((b, groups)) > missing, m, 1)
    return p, y, w


@pytest.mark.parametrize("v", [0.2, 1.3])
def test_matches_scipy_per_block(v):
    p, y, w = _data(0, missing=0.35)
    w[4] = 0.0  # a target with no block at all
    got = bmc_loss(
        torch.tensor(p),
        torch.tensor(y),
        v,
        target_weight=torch.tensor(w),
        groups=3,
        reduction="none",
    ).numpy()
    want = 2 * v * naive_grouped_nll(p, y, w, v, 3)
    assert got[4] == 0.0
    keep = ~np.isnan(want)
    assert keep.sum() == 5
    np.testing.assert_allclose(got[keep], want[keep], rtol=1e-10)
    mean = bmc_loss(
        torch.tensor(p),
        torch.tensor(y),
        v,
        target_weight=torch.tensor(w),
        groups=3,
        normalize_by_dim=True,
    )
    assert math.isclose(float(mean), want[keep].mean() / 9, rel_tol=1e-10)


def test_unweighted_blocks_are_the_whole_label_bmc_per_block():
    """No weights: the sum over blocks of the ordinary (fast-path) BMC of each block."""
    p, y, _ = _data(1, b=9, groups=4, m=2)
    pt, yt = torch.tensor(p), torch.tensor(y)
    got = bmc_loss(pt, yt, 0.4, groups=4, reduction="none")
    want = sum(
        bmc_loss(pt[:, 2 * g : 2 * g + 2], yt[:, 2 * g : 2 * g + 2], 0.4, reduction="none")
        for g in range(4)
    )
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # one block = the whole label
    torch.testing.assert_close(
        bmc_loss(pt, yt, 0.4, groups=1, reduction="none"), bmc_loss(pt, yt, 0.4, reduction="none")
    )
    # and per block is not the whole-label loss (the test above could not pass by accident)
    assert not torch.allclose(got, bmc_loss(pt, yt, 0.4, reduction="none"))


def test_valid_rows_equal_selecting_them():
    p, y, _ = _data(2, b=8)
    pt, yt = torch.tensor(p), torch.tensor(y)
    valid = torch.tensor([1, 0, 1, 1, 0, 1, 1, 1], dtype=torch.bool)
    got = bmc_loss(pt, yt, 0.5, groups=3, valid=valid)
    want = bmc_loss(pt[valid], yt[valid], 0.5, groups=3)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_gradients():
    p, y, w = _data(3, b=5, missing=0.3)
    pt = torch.tensor(p, requires_grad=True)
    wt = torch.tensor(w)
    assert torch.autograd.gradcheck(
        lambda a: bmc_loss(a, torch.tensor(y), 0.7, target_weight=wt, groups=3), (pt,)
    )
    # sigma's gradient is 2v times that of the balanced NLL (the value is (2v).detach() * NLL)
    v = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    (gv,) = torch.autograd.grad(
        bmc_loss(pt.detach(), torch.tensor(y), v, target_weight=wt, groups=3), v
    )
    keep = (w > 0).any(1)
    nll = lambda s: naive_grouped_nll(p, y, w, s, 3)[keep].mean()  # noqa: E731
    h = 1e-6
    assert math.isclose(float(gv), 1.4 * (nll(0.7 + h) - nll(0.7 - h)) / (2 * h), rel_tol=1e-6)
    # the prediction gradient per block, analytically: d/dp_i of 2v (T1 + T2) without weights
    # is 2 (p_i - y_i) - 2 (p_i - sum_j s_ij y_j), with s the block's softmax over the targets
    q = torch.tensor(p, requires_grad=True)
    loss = bmc_loss(q, torch.tensor(y), 0.7, groups=3, reduction="sum")
    loss.backward()
    want = np.zeros_like(p)
    for g in range(3):
        c = slice(3 * g, 3 * g + 3)
        sq = ((p[:, None, c] - y[None, :, c]) ** 2).sum(-1)
        s = np.exp(-sq / 1.4 - logsumexp(-sq / 1.4, axis=1, keepdims=True))
        want[:, c] = 2 * (p[:, c] - y[:, c]) - 2 * (p[:, c] - s @ y[:, c])
    np.testing.assert_allclose(q.grad.numpy(), want, rtol=1e-10, atol=1e-12)


def test_float32_and_module():
    p, y, _ = _data(4, b=64, groups=24, m=9)
    m32 = BMCLoss(0.3, learn_noise=False, groups=24, normalize_by_dim=True)
    got = m32(torch.tensor(p, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    want = bmc_loss(torch.tensor(p), torch.tensor(y), 0.09, groups=24, normalize_by_dim=True)
    assert got.dtype == torch.float32
    assert math.isclose(float(got), float(want), rel_tol=1e-5)
    assert "groups=24" in repr(m32)


@pytest.mark.parametrize("groups", [0, 4, 2.0, True])
def test_bad_groups(groups):
    p = torch.zeros(3, 6)
    with pytest.raises(ConfigError, match="groups"):
        bmc_loss(p, p, 1.0, groups=groups)
    if groups in (0, 2.0, True):
        with pytest.raises(ConfigError, match="groups"):
            BMCLoss(groups=groups)
