"""``valid`` masks of BMC and GAI equal selecting the valid rows (values and gradients)."""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ihmr.errors import ShapeError
from ihmr.losses import BMCLoss, GAILoss, bmc_loss

B, D = 7, 5


def _gmm(rng, k: int = 3, d: int = D) -> SimpleNamespace:
    a = rng.normal(size=(k, d, d)) * 0.5
    return SimpleNamespace(
        weights=np.full(k, 1.0 / k),
        means=rng.normal(size=(k, d)),
        covariances=a @ a.transpose(0, 2, 1) + 0.1 * np.eye(d),
    )


def _losses(rng):
    return {
        "bmc": BMCLoss(0.8, normalize_by_dim=True).double(),
        "bmc_mmhuman3d": BMCLoss.mmhuman3d(0.8).double(),
        "gai": GAILoss(_gmm(rng), 0.8, normalize_by_dim=True).double(),
    }


MASKS = {
    "some": [1, 0, 1, 1, 0, 1, 1],
    "one": [0, 0, 0, 1, 0, 0, 0],
    "all": [1] * B,
    "none": [0] * B,
}


@pytest.mark.parametrize("kind", ["bmc", "bmc_mmhuman3d", "gai"])
@pytest.mark.parametrize("mask", list(MASKS))
def test_mask_equals_selecting_the_valid_rows(rng, kind, mask):
    loss = _losses(rng)[kind]
    keep = torch.tensor(MASKS[mask], dtype=torch.bool)
    p0, y = torch.tensor(rng.normal(size=(B, D))), torch.tensor(rng.normal(size=(B, D)))
    p_sel, p_mask = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    with pytest.warns(RuntimeWarning) if (mask == "one" and "bmc" in kind) else nullcontext():
        want = loss(p_sel[keep], y[keep]) if keep.any() else p_sel.sum() * 0.0
    # float flags (SPIN's has_smpl) and bool flags give the same result
    got = loss(p_mask, y, valid=keep.double())
    assert torch.isfinite(got)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-12, abs=1e-15)
    (g_want,) = torch.autograd.grad(want, [p_sel], allow_unused=True)
    (g_got,) = torch.autograd.grad(got, [p_mask])
    g_want = torch.zeros_like(p0) if g_want is None else g_want
    torch.testing.assert_close(g_got, g_want, rtol=1e-10, atol=1e-14)
    assert not g_got[~keep].any()  # no gradient for a sample without a fit
    # sigma's gradient too (BMC's custom backward sees the masked columns)
    sig_want = (
        torch.autograd.grad(loss(p0[keep], y[keep]), [loss.noise_sigma])[0]
        if keep.sum() > 1
        else None
    )
    if sig_want is not None:
        sig_got = torch.autograd.grad(loss(p0, y, valid=keep), [loss.noise_sigma])[0]
        assert float(sig_got) == pytest.approx(float(sig_want), rel=1e-10)


# BMC with d = 216: the centred matrix product of the pairwise distances (centre from kept rows)
@pytest.mark.parametrize("kind,d", [("bmc", D), ("bmc", 216), ("gai", D)])
def test_masked_rows_may_hold_garbage_targets(rng, kind, d):
    """The targets of samples without a fit never reach the value or the gradient."""
    from ihmr.losses import gai_loss

    keep = torch.tensor(MASKS["some"], dtype=torch.bool)
    p = torch.tensor(rng.normal(size=(B, d)) * 0.3, requires_grad=True)
    y = torch.tensor(rng.normal(size=(B, d)) * 0.3)
    y_bad = y.clone()
    y_bad[1], y_bad[4] = 1e30, float("nan")  # no fit: anything
    gmm = _gmm(rng, d=d)
    fn = (
        (lambda t: bmc_loss(p, t, 0.5, valid=keep))
        if kind == "bmc"
        # noqa: E731
        else (lambda t: gai_loss(p, t, gmm, 0.5, valid=keep))
    )
    a, b = fn(y), fn(y_bad)  # NaN in a row without a fit is no input error either
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-12)
    (ga,) = torch.autograd.grad(a, [p])
    (gb,) = torch.autograd.grad(b, [p])
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-14)


def test_reduction_none_gives_zero_for_invalid_and_bad_shape_is_rejected(rng):
    keep = torch.tensor(MASKS["some"], dtype=torch.bool)
    p, y = torch.tensor(rng.normal(size=(B, D))), torch.tensor(rng.normal(size=(B, D)))
    per = bmc_loss(p, y, 0.5, valid=keep, reduction="none")
    assert (per[~keep] == 0).all()
    torch.testing.assert_close(per[keep], bmc_loss(p[keep], y[keep], 0.5, reduction="none"))
    with pytest.raises(ShapeError, match="valid must have shape"):
        bmc_loss(p, y, 0.5, valid=keep[:3])


def test_valid_with_target_weights_equals_zero_weights_for_invalid_rows(rng):
    """With per-coordinate target weights, an invalid sample is one whose weights are all 0;
    and that equals dropping the sample (rows and targets) altogether."""
    keep = torch.tensor(MASKS["some"], dtype=torch.bool)
    p = torch.tensor(rng.normal(size=(B, D)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(B, D)))
    w = torch.tensor(rng.uniform(0.2, 1.5, size=(B, D)))
    w[0, 1] = 0.0  # one missing coordinate in a valid row
    got = bmc_loss(p, y, 0.5, target_weight=w, valid=keep)
    zeroed = bmc_loss(p, y, 0.5, target_weight=w * keep[:, None])
    dropped = bmc_loss(p[keep], y[keep], 0.5, target_weight=w[keep])
    assert float(got.detach()) == pytest.approx(float(zeroed.detach()), rel=1e-12)
    assert float(got.detach()) == pytest.approx(float(dropped.detach()), rel=1e-10)
    (g,) = torch.autograd.grad(got, [p])
    assert not g[~keep].any()
