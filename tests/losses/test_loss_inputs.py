"""Bad input, dtypes and autocast, shared by every loss."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ihmr.errors import ShapeError
from ihmr.losses import bmc_loss, bni_loss, gai_loss, value_checks, weighted_mse_loss

PRIOR = SimpleNamespace(weights=[1.0], means=np.zeros((1, 3)), covariances=np.eye(3)[None])
CENTERS, WEIGHTS = torch.randn(10, 3, dtype=torch.float64), torch.rand(10, dtype=torch.float64)

LOSSES = {
    "bmc": lambda p, y, v=1.0, **kw: bmc_loss(p, y, v, **kw),
    "gai": lambda p, y, v=1.0, **kw: gai_loss(p, y, PRIOR, v, **kw),
    "bni": lambda p, y, v=1.0, **kw: bni_loss(p, y, CENTERS, WEIGHTS, v, **kw),
    "weighted": lambda p, y, v=1.0, **kw: weighted_mse_loss(p, y, **kw),
}
BALANCED = ["bmc", "gai", "bni"]


@pytest.mark.parametrize("name", list(LOSSES))
def test_shapes_per_reduction(name, device):
    p, y = torch.randn(5, 3, device=device), torch.randn(5, 3, device=device)
    f = LOSSES[name]
    assert f(p, y, reduction="mean").shape == ()
    assert f(p, y, reduction="sum").shape == ()
    out = f(p, y, reduction="none")
    assert out.shape == (5,) and out.device == p.device
    torch.testing.assert_close(out.mean(), f(p, y))
    torch.testing.assert_close(out.sum(), f(p, y, reduction="sum"))


@pytest.mark.parametrize("name", list(LOSSES))
def test_shape_errors(name):
    f = LOSSES[name]
    with pytest.raises(ShapeError, match=r"same shape, got \(4, 3\) and \(4, 2\)"):
        f(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ShapeError, match=r"\(B,\) or \(B, d\), got \(4, 3, 1\)"):
        f(torch.zeros(4, 3, 1), torch.zeros(4, 3, 1))
    with pytest.raises(ShapeError, match="empty batch"):
        f(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="did you mean 'sum'"):
        f(torch.zeros(4, 3), torch.zeros(4, 3), reduction="sun")
    with pytest.raises(TypeError, match="floating-point"):
        f(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3))


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("which", ["pred", "target"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_are_named(name, which, bad):
    p, y = torch.randn(4, 3), torch.randn(4, 3)
    (p if which == "pred" else y)[2, 1] = bad
    with pytest.raises(ValueError, match=f"{which} contains 1 non-finite"):
        LOSSES[name](p, y)


@pytest.mark.parametrize("name", list(LOSSES))
def test_value_checks_can_be_switched_off(name):
    p, y = torch.randn(4, 3), torch.randn(4, 3)
    p[1, 2] = float("nan")
    with value_checks(False):
        assert torch.isnan(LOSSES[name](p, y))  # NaN in, NaN out: the caller checks
        with value_checks(True):  # nested blocks restore the outer setting
            with pytest.raises(ValueError, match="pred contains 1 non-finite"):
                LOSSES[name](p, y)
        assert torch.isnan(LOSSES[name](p, y))
        with pytest.raises(ShapeError):  # shape checks always run
            LOSSES[name](p, y[:, :2])
    with pytest.raises(ValueError, match="pred contains 1 non-finite"):
        LOSSES[name](p, y)


@pytest.mark.parametrize("name", BALANCED)
@pytest.mark.parametrize("v", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_noise_var(name, v):
    with pytest.raises(ValueError, match="noise_var must be finite and > 0"):
        LOSSES[name](torch.randn(4, 3), torch.randn(4, 3), torch.tensor(v))
    with pytest.raises(ShapeError, match="one number"):
        LOSSES[name](torch.randn(4, 3), torch.randn(4, 3), torch.ones(2))


@pytest.mark.parametrize("name", list(LOSSES))
def test_dtype_follows_pred_and_inputs_untouched(name):
    p = torch.randn(6, 3, requires_grad=True)
    y64 = torch.randn(6, 3, dtype=torch.float64)
    p0, y0 = p.detach().clone(), y64.clone()
    out = LOSSES[name](p, y64, torch.tensor(0.7, dtype=torch.float64))
    assert out.dtype == torch.float32
    out.backward()
    assert p.grad.dtype == torch.float32
    assert torch.equal(p.detach(), p0) and torch.equal(y64, y0)
    half = LOSSES[name](p.detach().half(), y64)
    assert half.dtype == torch.float32 and torch.isfinite(half)


@pytest.mark.parametrize("name", list(LOSSES))
def test_bf16_autocast_runs_finite(name, gen):
    lin = torch.nn.Linear(4, 3)
    x, y = torch.randn(32, 4, generator=gen), torch.randn(32, 3, generator=gen)
    sigma = torch.tensor(0.5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = lin(x)
        assert pred.dtype == torch.bfloat16
        loss = LOSSES[name](pred, y, sigma**2)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(lin.weight.grad).all()
    # computed in float32 from the bf16 predictions, not in bf16
    ref = LOSSES[name](pred.detach().float(), y, sigma.detach() ** 2)
    torch.testing.assert_close(loss.detach(), ref, rtol=1e-6, atol=1e-6)
