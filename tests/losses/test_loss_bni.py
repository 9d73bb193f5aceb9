"""BNI (Eq. 3.16): naive loop, numerical integral of a known density, uniform bins, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ihmr.errors import ShapeError
from ihmr.losses import bni_loss


def naive_bni_nll(p, y, centers, weights, v):
    """Eq. 3.16 per sample with explicit Gaussian densities, bin by bin (float64)."""
    d = p.shape[1]
    out = []
    for pi, yi in zip(p, y, strict=True):
        norm = (2 * math.pi * v) ** (-d / 2)
        mse = -math.log(norm * math.exp(-np.sum((yi - pi) ** 2) / (2 * v)))
        integral = sum(
            w * norm * math.exp(-np.sum((c - pi) ** 2) / (2 * v))
            for c, w in zip(centers, weights, strict=True)
        )
        out.append(mse + math.log(integral))
    return np.array(out)


@pytest.mark.parametrize("d", [1, 2])
def test_matches_naive_loop_with_empty_bins(rng, d):
    centers = rng.uniform(-2, 2, size=(15, d))
    weights = rng.uniform(0, 1, size=15)
    weights[[0, 3, 7]] = 0.0  # empty bins: log 0 = -inf must drop out
    p, y, v = rng.normal(size=(6, d)), rng.normal(size=(6, d)), 0.8
    got = bni_loss(
        torch.tensor(p),
        torch.tensor(y),
        torch.tensor(centers),
        torch.tensor(weights),
        v,
        reduction="none",
    )
    np.testing.assert_allclose(
        got.numpy(), 2 * v * naive_bni_nll(p, y, centers, weights, v), rtol=1e-10
    )


def test_riemann_sum_approximates_the_integral():
    # Densities of N(1, 0.7^2) on a grid of width 0.01: T2 + log(Delta) - (1/2) log(2 pi v)
    # approximates log int N(y; p, v) p_train(y) dy = log N(p; 1, 0.49 + v) (closed form).
    delta, v = 0.01, 0.25
    centers = np.arange(-8, 10, delta)
    dens = np.exp(-0.5 * (centers - 1) ** 2 / 0.49) / math.sqrt(2 * math.pi * 0.49)
    p = np.array([-1.0, 0.5, 3.0])
    t2 = bni_loss(
        torch.tensor(p),
        torch.tensor(p),
        torch.tensor(centers),
        torch.tensor(dens),
        v,
        mse_weight=0.0,
        reduction="none",
    ).numpy() / (2 * v)
    got = t2 + math.log(delta) - 0.5 * math.log(2 * math.pi * v)
    s2 = 0.49 + v
    want = -0.5 * (p - 1) ** 2 / s2 - 0.5 * np.log(2 * math.pi * s2)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_uniform_bins_give_the_mse_gradient(rng):
    centers = torch.arange(-20, 20, 0.05, dtype=torch.float64)
    weights = torch.ones_like(centers)
    y = torch.tensor(rng.uniform(-2, 2, size=8))
    p = torch.tensor(rng.uniform(-2, 2, size=8), requires_grad=True)
    loss = bni_loss(p, y, centers, weights, 0.5)
    (g,) = torch.autograd.grad(loss, p)
    torch.testing.assert_close(g, 2 * (p - y).detach() / 8, rtol=0, atol=1e-9)


def test_gradcheck_float64(rng):
    centers, weights = torch.tensor(rng.normal(size=(9, 2))), torch.tensor(rng.uniform(size=9))
    p = torch.tensor(rng.normal(size=(4, 2)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(4, 2)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: bni_loss(a, b, centers, weights, 0.6), (p, y))


def test_noise_var_gradient_against_finite_difference(rng):
    centers, weights = rng.normal(size=(12, 2)), rng.uniform(size=12)
    p, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    v0, h = 0.6, 1e-6
    fd = (
        naive_bni_nll(p, y, centers, weights, v0 + h).mean()
        - naive_bni_nll(p, y, centers, weights, v0 - h).mean()
    ) / (2 * h)
    v = torch.tensor(v0, dtype=torch.float64, requires_grad=True)
    bni_loss(
        torch.tensor(p), torch.tensor(y), torch.tensor(centers), torch.tensor(weights), v
    ).backward()
    assert float(v.grad) == pytest.approx(2 * v0 * fd, rel=1e-6)


def test_stable_and_float32(rng):
    centers = torch.linspace(0, 10, 100, dtype=torch.float64)
    weights = torch.exp(-centers)  # float64 prior
    p = torch.tensor(rng.uniform(0, 10, 32), dtype=torch.float32, requires_grad=True)
    for v, shift in ((1e-8, 0.0), (1.0, 1e4), (1e-8, 1e4)):
        out = bni_loss(p, p.detach() + shift, centers, weights, torch.tensor(v))
        assert out.dtype == torch.float32
        (g,) = torch.autograd.grad(out, p)
        assert torch.isfinite(out) and torch.isfinite(g).all()


def test_bin_errors():
    p, y = torch.zeros(4, 2), torch.zeros(4, 2)
    with pytest.raises(ShapeError, match="dimension 1 but pred/target have d = 2"):
        bni_loss(p, y, torch.zeros(5), torch.ones(5), 1.0)
    with pytest.raises(ShapeError, match=r"bin_weights must have shape \(Nb,\) = \(5,\)"):
        bni_loss(p, y, torch.zeros(5, 2), torch.ones(4), 1.0)
    with pytest.raises(ValueError, match="at least one > 0"):
        bni_loss(p, y, torch.zeros(5, 2), torch.zeros(5), 1.0)
    with pytest.raises(ValueError, match="at least one > 0"):
        bni_loss(p, y, torch.zeros(5, 2), torch.tensor([1.0, -1, 1, 1, 1]), 1.0)
    with pytest.raises(ValueError, match="bin_weights contains 1 non-finite"):
        bni_loss(p, y, torch.zeros(5, 2), torch.tensor([1.0, np.inf, 1, 1, 1]), 1.0)
