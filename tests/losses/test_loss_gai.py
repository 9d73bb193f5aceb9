"""GAI (Eq. 3.12): quadrature and Monte-Carlo integrals, scipy densities, uniform prior, sigma."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ihmr.errors import ShapeError
from ihmr.losses import gai_loss, prepare_gmm


def random_gmm(rng, k: int, d: int, scale: float = 1.0) -> SimpleNamespace:
    a = rng.normal(size=(k, d, d))
    cov = scale * (a @ a.transpose(0, 2, 1) / d + 0.2 * np.eye(d))
    w = rng.uniform(0.2, 1.0, size=k)
    return SimpleNamespace(weights=w / w.sum(), means=rng.normal(size=(k, d)) * 2, covariances=cov)


def scipy_nll(p, y, prior, v):
    """Eq. 3.12 per sample with scipy's Gaussian densities (float64)."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal as mvn

    d = p.shape[1]
    out = []
    for pi, yi in zip(p, y, strict=True):
        mse = -mvn.logpdf(yi, mean=pi, cov=v * np.eye(d))
        comps = [
            math.log(w) + mvn.logpdf(pi, mean=m, cov=c + v * np.eye(d))
            for w, m, c in zip(prior.weights, prior.means, prior.covariances, strict=True)
        ]
        out.append(mse + logsumexp(comps))
    return np.array(out)


@pytest.mark.parametrize("d", [1, 4])
def test_value_is_2v_times_eq_3_12(rng, d):
    prior = random_gmm(rng, 3, d)
    p, y, v = rng.normal(size=(6, d)), rng.normal(size=(6, d)), 0.6
    got = gai_loss(
        torch.tensor(p), torch.tensor(y), prepare_gmm(prior, torch.float64), v, reduction="none"
    )
    np.testing.assert_allclose(got.numpy(), 2 * v * scipy_nll(p, y, prior, v), rtol=1e-9)


def balancing_term(p, prior, v):
    """log int N(y; p, vI) p_train(y) dy as computed by gai_loss (balance term only)."""
    d = p.shape[1]
    t = gai_loss(
        torch.tensor(p),
        torch.tensor(p),
        prepare_gmm(prior, torch.float64),
        v,
        mse_weight=0.0,
        reduction="none",
    ) / (2 * v)
    return t.numpy() - 0.5 * d * math.log(2 * math.pi)


def test_balancing_term_against_quadrature_1d(rng):
    from scipy.integrate import quad
    from scipy.stats import norm

    prior = random_gmm(rng, 3, 1)
    v = 0.3
    p = np.array([[-4.0], [0.0], [1.3], [6.0]])

    def p_train(t):
        return sum(
            w * norm.pdf(t, m[0], math.sqrt(c[0, 0]))
            for w, m, c in zip(prior.weights, prior.means, prior.covariances, strict=True)
        )

    want = [
        math.log(
            quad(
                lambda t, pi=pi: norm.pdf(t, pi[0], math.sqrt(v)) * p_train(t),
                -30,
                30,
                points=[pi[0]],
                limit=200,
                epsabs=1e-14,
            )[0]
        )
        for pi in p
    ]
    np.testing.assert_allclose(balancing_term(p, prior, v), want, rtol=1e-7)


def test_balancing_term_against_monte_carlo_3d(rng):
    from scipy.stats import multivariate_normal as mvn

    prior = random_gmm(rng, 2, 3)
    v = 0.5
    p = rng.normal(size=(3, 3))
    want = []
    for pi in p:
        # E_{y ~ N(p, vI)}[p_train(y)] = int N(y; p, vI) p_train(y) dy
        ys = pi + math.sqrt(v) * rng.standard_normal((200_000, 3))
        dens = sum(
            w * mvn.pdf(ys, m, c)
            for w, m, c in zip(prior.weights, prior.means, prior.covariances, strict=True)
        )
        want.append(math.log(dens.mean()))
    np.testing.assert_allclose(balancing_term(p, prior, v), want, rtol=0, atol=0.02)


def test_uniform_prior_reduces_to_mse_plus_constant(rng):
    d, v = 2, 0.4
    wide = SimpleNamespace(
        weights=[1.0], means=np.zeros((1, d)), covariances=1e10 * np.eye(d)[None]
    )
    y = torch.tensor(rng.normal(size=(8, d)))
    values = []
    for _ in range(2):
        p = torch.tensor(rng.normal(size=(8, d)), requires_grad=True)
        loss = gai_loss(p, y, prepare_gmm(wide, torch.float64), v, reduction="none")
        mse = ((p - y) ** 2).sum(1)
        values.append((loss - mse).detach())
        (g,) = torch.autograd.grad(loss.mean(), p)
        torch.testing.assert_close(g, 2 * (p - y).detach() / 8, rtol=0, atol=1e-8)
    # constant = 2v [(d/2) log v - (1/2) logdet(Sigma + vI)], the same for every sample
    const = 2 * v * (0.5 * d * math.log(v) - 0.5 * d * math.log(1e10 + v))
    for val in values:
        torch.testing.assert_close(val, torch.full_like(val, const), rtol=0, atol=1e-8)


def test_noise_var_gradient_against_finite_difference(rng):
    prior = random_gmm(rng, 4, 3)
    p, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    v0, h = 0.7, 1e-6
    fd = (scipy_nll(p, y, prior, v0 + h).mean() - scipy_nll(p, y, prior, v0 - h).mean()) / (2 * h)
    v = torch.tensor(v0, dtype=torch.float64, requires_grad=True)
    gai_loss(torch.tensor(p), torch.tensor(y), prepare_gmm(prior, torch.float64), v).backward()
    assert float(v.grad) == pytest.approx(2 * v0 * fd, rel=1e-6)


def test_gradcheck_float64(rng):
    prior = prepare_gmm(random_gmm(rng, 3, 2), torch.float64)
    p = torch.tensor(rng.normal(size=(4, 2)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(4, 2)), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: gai_loss(a, b, prior, 0.5, balance_weight=0.3), (p, y)
    )


def test_raw_and_prepared_prior_agree_and_1d_shapes(rng):
    prior = random_gmm(rng, 2, 1)
    p, y = torch.tensor(rng.normal(size=5)), torch.tensor(rng.normal(size=5))
    a = gai_loss(p, y, prior, 0.5, reduction="none")
    b = gai_loss(p[:, None], y[:, None], prepare_gmm(prior, torch.float64), 0.5, reduction="none")
    assert a.shape == (5,)
    torch.testing.assert_close(a, b)
    flat = SimpleNamespace(
        weights=prior.weights, means=prior.means[:, 0], covariances=prior.covariances[:, 0, 0]
    )
    torch.testing.assert_close(gai_loss(p, y, flat, 0.5, reduction="none"), a)


def test_float64_prior_does_not_promote_float32(rng):
    prior = random_gmm(rng, 3, 2)  # numpy float64 arrays
    p = torch.randn(4, 2, requires_grad=True)
    out = gai_loss(p, torch.randn(4, 2), prior, torch.tensor(0.5))
    assert out.dtype == torch.float32
    out.backward()
    assert p.grad.dtype == torch.float32


def test_stable_for_tiny_sigma_and_huge_errors(rng):
    prior = prepare_gmm(random_gmm(rng, 4, 3))
    p = torch.tensor(rng.normal(size=(16, 3)), dtype=torch.float32, requires_grad=True)
    for v, shift in ((1e-8, 0.0), (1.0, 1e4), (1e-8, 1e4)):
        out = gai_loss(p, p.detach() + shift + 0.1, prior, torch.tensor(v), reduction="none")
        (g,) = torch.autograd.grad(out.sum(), p)
        assert torch.isfinite(out).all() and torch.isfinite(g).all()


def test_prior_errors(rng):
    p, y = torch.randn(4, 3), torch.randn(4, 3)
    prior = random_gmm(rng, 2, 2)
    with pytest.raises(ShapeError, match="dimension 2 but pred/target have d = 3"):
        gai_loss(p, y, prior, 1.0)
    with pytest.raises(TypeError, match="lacks covariances"):
        gai_loss(p, y, SimpleNamespace(weights=[1.0], means=[[0, 0, 0]]), 1.0)
    bad = random_gmm(rng, 2, 3)
    bad.covariances = bad.covariances.copy()
    bad.covariances[0, 0, 1] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        gai_loss(p, y, bad, 1.0)
    neg = SimpleNamespace(weights=[1.0], means=np.zeros((1, 3)), covariances=-np.eye(3)[None])
    with pytest.raises(ValueError, match="positive semi-definite"):
        gai_loss(p, y, neg, 1.0)
    nan = SimpleNamespace(weights=[1.0], means=np.full((1, 3), np.nan), covariances=np.eye(3)[None])
    with pytest.raises(ValueError, match="means contain NaN"):
        gai_loss(p, y, nan, 1.0)
    with pytest.raises(ShapeError, match=r"\(K, d, d\)"):
        gai_loss(
            p, y, SimpleNamespace(weights=[1.0], means=np.zeros((1, 3)), covariances=np.eye(3)), 1.0
        )
    unnorm = SimpleNamespace(weights=[2.0], means=np.zeros((1, 3)), covariances=np.eye(3)[None])
    with pytest.warns(UserWarning, match="normalising"):
        a = gai_loss(p, y, unnorm, 1.0)
    unnorm.weights = [1.0]
    torch.testing.assert_close(a, gai_loss(p, y, unnorm, 1.0))
