"""Batched closed-form gradients of the synthetic benchmark against autograd, ihmr.losses and a
naive loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ihmr.synthetic import losses as L

F64 = torch.float64


class _Prior:
    def __init__(self, w, mu, cov):
        self.weights, self.means, self.covariances = w, mu, cov


def _random_problem(M, B, d, K, seed=0):
    g = torch.Generator().manual_seed(seed)
    P = (3 * torch.randn(M, B, d, generator=g, dtype=F64)).requires_grad_()
    Y = 3 * torch.randn(M, B, d, generator=g, dtype=F64)
    v = (0.3 + torch.rand(M, generator=g, dtype=F64)).requires_grad_()
    w = torch.rand(M, K, generator=g, dtype=F64) + 0.1
    w = w / w.sum(-1, keepdim=True)
    mu = 2 * torch.randn(M, K, d, generator=g, dtype=F64)
    A = torch.randn(M, K, d, d, generator=g, dtype=F64)
    cov = A @ A.transpose(-1, -2) + 0.05 * torch.eye(d, dtype=F64)
    priors = [_Prior(w[m].numpy(), mu[m].numpy(), cov[m].numpy()) for m in range(M)]
    return P, Y, v, w, mu, cov, priors


@pytest.mark.parametrize("d", [1, 2, 3])
def test_bmc_grads_match_autograd(d):
    P, Y, v, *_ = _random_problem(5, 9, d, 1)
    gP, gv = torch.autograd.grad(L.bmc_value(P, Y, v).sum(), (P, v))
    fP, fv = L.bmc_grads(P.detach(), Y, v.detach(), chunk=2)  # chunks of 2 models: 2, 2, 1
    torch.testing.assert_close(fP, gP, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fv, gv, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d,K", [(1, 1), (1, 5), (2, 1), (2, 3)])
def test_gai_grads_match_autograd(d, K):
    P, Y, v, w, mu, cov, priors = _random_problem(4, 8, d, K)
    gP, gv = torch.autograd.grad(L.gai_value(P, Y, v, w.log(), mu, cov).sum(), (P, v))
    t = L.prior_tensors(priors, K, F64)
    coef = L.gai_tables(t["log_weights"], t["means"], t["eigvals"], t["eigvecs"], v.detach())
    fP, fv = L.gai_grads(P.detach(), Y, v.detach(), *coef)
    torch.testing.assert_close(fP, gP, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(fv, gv, rtol=1e-9, atol=1e-11)


def test_gai_padding_components_change_nothing():
    P, Y, v, w, mu, cov, priors = _random_problem(3, 6, 1, 2)
    P, v = P.detach(), v.detach()
    outs = []
    for k_max in (2, 7):
        t = L.prior_tensors(priors, k_max, F64)
        coef = L.gai_tables(t["log_weights"], t["means"], t["eigvals"], t["eigvecs"], v)
        outs.append(L.gai_grads(P, Y, v, *coef))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])


def test_bmc_value_against_naive_loop():
    P, Y, v, *_ = _random_problem(2, 5, 2, 1)
    P, v = P.detach(), v.detach()
    got = L.bmc_value(P, Y, v)
    for m in range(2):
        total = 0.0
        vm = float(v[m])
        for i in range(5):
            logits = [-float(((P[m, i] - Y[m, j]) ** 2).sum()) / (2 * vm) for j in range(5)]
            mx = max(logits)
            lse = mx + math.log(sum(math.exp(a - mx) for a in logits))
            total += 2 * vm * (-logits[i] + lse)
        assert abs(total / 5 - float(got[m])) < 1e-10


def test_values_equal_ihmr_losses_per_model():
    losses = pytest.importorskip("ihmr.losses")
    P, Y, v, w, mu, cov, priors = _random_problem(3, 7, 2, 3)
    bmc = L.bmc_value(P, Y, v)
    gai = L.gai_value(P, Y, v, w.log(), mu, cov)
    for m in range(3):
        ref_b = losses.bmc_loss(P[m], Y[m], v[m])
        ref_g = losses.gai_loss(P[m], Y[m], priors[m], v[m])
        torch.testing.assert_close(bmc[m], ref_b, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gai[m], ref_g, rtol=1e-10, atol=1e-12)
        # and so the fast gradients equal ihmr.losses' autograd gradients
        gP_ref, gv_ref = torch.autograd.grad(ref_b, (P, v))
        fP, fv = L.bmc_grads(P[m : m + 1].detach(), Y[m : m + 1], v[m : m + 1].detach())
        torch.testing.assert_close(fP[0], gP_ref[m], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(fv[0], gv_ref[m], rtol=1e-9, atol=1e-12)


def test_reweight_gradient_matches_weighted_mse():
    losses = pytest.importorskip("ihmr.losses")
    P, Y, *_ = _random_problem(2, 6, 1, 1)
    inv = torch.rand(2, 6, dtype=F64) + 0.5
    w = L.reweight_weights(inv)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, dtype=F64))
    g = L.mse_grad(P.detach().clone(), Y, w)
    for m in range(2):
        ref = losses.weighted_mse_loss(P[m], Y[m], w[m], reduction="sum")
        (gr,) = torch.autograd.grad(ref, P)
        torch.testing.assert_close(g[m], gr[m], rtol=1e-12, atol=1e-12)


def test_bmc_float32_is_stable_for_far_predictions():
    # Predictions 40 sigma away from every target: no overflow/underflow (row-max shift).
    P = torch.full((1, 4, 1), 50.0)
    Y = torch.linspace(0, 10, 4).view(1, 4, 1)
    gP, gv = L.bmc_grads(P, Y, torch.ones(1))
    assert torch.isfinite(gP).all() and torch.isfinite(gv).all()
    # the softmax then puts all mass on the nearest target (y = 10)
    np.testing.assert_allclose(gP[0, :, 0].numpy(), 2 * (10.0 - Y[0, :, 0].numpy()) / 4, rtol=1e-5)
