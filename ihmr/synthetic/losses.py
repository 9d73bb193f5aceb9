"""Balanced MSE and baselines batched over many models, with closed-form gradients.

The synthetic benchmark trains hundreds of tiny regressors at once. For speed the training loop
does not build an autograd graph: these functions return the gradients of each model's loss with
respect to its predictions ``P`` and its noise variance ``v`` directly. The values they
differentiate are exactly those of :mod:`ihmr.losses` (``(2v).detach()`` times the balanced NLL,
batch mean), and the ``*_value`` functions below compute them with plain autograd-able torch so
that tests can check the gradients against autograd and the values against :mod:`ihmr.losses`.

Shapes: ``M`` models, ``B`` samples per batch, ``d`` label dimensions, ``K`` GMM components.
``P`` and ``Y`` are (M, B, d); ``v`` is (M,); gradients have the shapes of ``P`` and ``v``.

Derivations (per model, ``e_i = p_i - y_i``, ``c = 2v`` treated as a constant):

- MSE / reweighting: ``L = sum_i w_i ||e_i||^2`` (``w_i = 1/B`` or normalised 1/p_train),
  ``dL/dp_i = 2 w_i e_i``.
- BMC (Eq. 3.14): ``L = c/B sum_i [||e_i||^2/(2v) + lse_j(-||p_i - y_j||^2/(2v))]``. With the
  batch softmax ``S_ij`` and ``ybar_i = sum_j S_ij y_j``: ``dL/dp_i = 2 (ybar_i - y_i)/B`` and
  ``dL/dv = 1/(vB) sum_i [sum_j S_ij ||y_j||^2 - ||y_i||^2 - 2 p_i.(ybar_i - y_i)]``. The
  softmax over ``j`` ignores the row constant ``-||p_i||^2/(2v)``, so the logits are
  ``(p_i.y_j - ||y_j||^2/2)/v``: one batched matrix product, one softmax, one matrix product.
- GAI (Eq. 3.12) with ``A_k = (Sigma_k + vI)^-1`` from a precomputed eigendecomposition:
  ``T2_i = lse_k[log phi_k + log N(p_i; mu_k, Sigma_k + vI)]`` is, per component, a quadratic
  in ``p_i``; the logits are one matrix product of the features ``[vec(p p^T), p, 1]`` with
  per-component coefficients. ``dT2/dp = -sum_k r_k A_k (p - mu_k)``,
  ``dT2/dv = sum_k r_k [-tr(A_k)/2 + (p - mu_k)^T A_k^2 (p - mu_k)/2]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import MultivariateNormal

# log-weight of padding components (priors with fewer than K components share one tensor).
PAD_LOG_WEIGHT = -1.0e4
LOG2E = 1.0 / math.log(2.0)


def mse_grad(P: torch.Tensor, Y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient of ``sum_i w_i ||p_i - y_i||^2`` w.r.t. ``P`` (``w`` (M, B) or None = 1/B)."""
    E = P - Y
    if w is None:
        return E.mul_(2.0 / P.shape[-2])
    return E.mul_(2.0 * w.unsqueeze(-1))


def reweight_weights(inv_density: torch.Tensor) -> torch.Tensor:
    """Normalised inverse-density weights of a batch: (M, B) -> (M, B), rows summing to 1."""
    return inv_density / inv_density.sum(-1, keepdim=True)


def bmc_grads(
    P: torch.Tensor, Y: torch.Tensor, v: torch.Tensor, chunk: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the BMC loss (batch mean of ``2v * Eq. 3.14``) w.r.t. ``P`` and ``v``.

    The (B, B) softmax is computed ``chunk`` models at a time (about 1 MB for B = 256, so the
    passes stay in cache) as ``exp2`` of base-2 logits minus their row maximum (``exp2`` is
    about 2.5x faster than ``exp`` on the CPU), and the unnormalised moments ``sum_j E_ij
    [1, y_j, ||y_j||^2]`` are one batched matrix product.

    Args:
        P: (M, B, d) predictions; Y: (M, B, d) targets; v: (M,) noise variances.
    Returns:
        ``(dL/dP (M, B, d), dL/dv (M,))``.
    """
    M, n, d = P.shape
    ysq = (Y * Y).sum(-1)  # (M, B)
    scale = LOG2E / v  # base-2 logits: log2(e) * (p.y - ||y||^2 / 2) / v
    # (M, d + 2, B): rows 1, y_1 .. y_d, ||y||^2. The moments are computed as yaug^T @ S^T,
    # the layout in which the CPU GEMM is fastest for a (B, B) by (B, d + 2) product.
    yaug = torch.cat([torch.ones_like(ysq).unsqueeze(1), Y.transpose(1, 2), ysq.unsqueeze(1)], 1)
    moments = torch.empty(M, d + 2, n, dtype=P.dtype, device=P.device)
    for s in range(0, M, chunk):
        e = min(s + chunk, M)
        sc = scale[s:e].view(-1, 1, 1)
        logits = torch.baddbmm(
            (ysq[s:e] * (-0.5)).unsqueeze(1) * sc, P[s:e] * sc, Y[s:e].transpose(1, 2)
        )
        logits.sub_(logits.amax(-1, keepdim=True)).exp2_()
        torch.bmm(yaug[s:e], logits.transpose(1, 2), out=moments[s:e])
    z = moments[:, 0]  # (M, B)
    ybar = (moments[:, 1 : 1 + d] / z.unsqueeze(1)).transpose(1, 2)
    m2 = moments[:, -1] / z
    diff = ybar - Y
    gP = diff * (2.0 / n)
    gv = (m2 - ysq - 2.0 * (P * diff).sum(-1)).sum(-1) / (v * n)
    return gP, gv


def gai_tables(
    log_weights: torch.Tensor,
    means: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    v: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model, per-component coefficient tables of GAI for the current ``v``.

    Args:
        log_weights: (M, K) log mixture weights (``PAD_LOG_WEIGHT`` for padding components).
        means: (M, K, d); eigvals: (M, K, d) and eigvecs: (M, K, d, d) of the covariances
            (``Sigma_k = U diag(lambda) U^T``, computed once); v: (M,).
    Returns:
        ``logit_coef`` (M, d*d + d + 1, K): the component log-densities are
        ``[vec(p p^T), p, 1] @ logit_coef``; ``grad_coef`` (M, K, 2 d*d + 2 d + 2): the rows
        ``[vec(A), A mu, vec(A^2), A^2 mu, mu^T A^2 mu, tr A]`` averaged by the responsibilities
        give everything the gradients need.
    """
    d = means.shape[-1]
    s = eigvals + v.view(-1, 1, 1)  # (M, K, d)
    inv = 1.0 / s
    A = torch.einsum("mkab,mkb,mkcb->mkac", eigvecs, inv, eigvecs)
    A2 = torch.einsum("mkab,mkb,mkcb->mkac", eigvecs, inv * inv, eigvecs)
    Amu = torch.einsum("mkab,mkb->mka", A, means)
    A2mu = torch.einsum("mkab,mkb->mka", A2, means)
    const = log_weights - 0.5 * torch.log(2.0 * math.pi * s).sum(-1) - 0.5 * (means * Amu).sum(-1)
    M, K = log_weights.shape
    logit_coef = torch.cat(
        [-0.5 * A.reshape(M, K, d * d), Amu, const.unsqueeze(-1)], dim=-1
    ).transpose(1, 2)
    grad_coef = torch.cat(
        [
            A.reshape(M, K, d * d),
            Amu,
            A2.reshape(M, K, d * d),
            A2mu,
            (means * A2mu).sum(-1, keepdim=True),
            inv.sum(-1, keepdim=True),
        ],
        dim=-1,
    )
    return logit_coef.contiguous(), grad_coef


def gai_grads(
    P: torch.Tensor,
    Y: torch.Tensor,
    v: torch.Tensor,
    logit_coef: torch.Tensor,
    grad_coef: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the GAI loss (batch mean of ``2v * Eq. 3.12``) w.r.t. ``P`` and ``v``.

    Args:
        P, Y: (M, B, d); v: (M,); ``logit_coef``, ``grad_coef`` from :func:`gai_tables`.
    Returns:
        ``(dL/dP (M, B, d), dL/dv (M,))``.
    """
    M, n, d = P.shape
    outer = (P.unsqueeze(-1) * P.unsqueeze(-2)).reshape(M, n, d * d)
    feats = torch.cat([outer, P, torch.ones_like(P[..., :1])], dim=-1)
    r = torch.softmax(torch.bmm(feats, logit_coef), dim=-1)  # (M, B, K) responsibilities
    # (M, B, q) as (coef^T @ r^T)^T: the layout in which the CPU GEMM is fastest here.
    H = torch.bmm(grad_coef.transpose(1, 2), r.transpose(1, 2)).transpose(1, 2)
    dd = d * d
    Abar = H[..., :dd].reshape(M, n, d, d)
    Amu = H[..., dd : dd + d]
    A2bar = H[..., dd + d : 2 * dd + d].reshape(M, n, d, d)
    A2mu = H[..., 2 * dd + d : 2 * dd + 2 * d]
    muA2mu = H[..., -2]
    trA = H[..., -1]
    # (B, d, d) x (B, d) products as broadcast sums: tiny batched matmuls are slow on the CPU
    Pr = P.unsqueeze(-2)
    dT2_dp = Amu - (Abar * Pr).sum(-1)
    quad = 0.5 * (P * (A2bar * Pr).sum(-1)).sum(-1) - (P * A2mu).sum(-1)
    dT2_dv = quad + 0.5 * muA2mu - 0.5 * trA  # (M, B)
    E = P - Y
    vv = v.view(-1, 1)
    gP = (E + vv.unsqueeze(-1) * dT2_dp) * (2.0 / n)
    dT1_dv = -(E * E).sum(-1) / (2.0 * vv * vv) + d / (2.0 * vv)
    gv = (dT1_dv + dT2_dv).sum(-1) * (2.0 * v / n)
    return gP, gv


def prior_tensors(priors, k_max: int, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Stack GMM priors (objects with ``weights``, ``means``, ``covariances``) into padded
    tensors: log_weights (M, K), means (M, K, d), eigvals (M, K, d), eigvecs (M, K, d, d).
    The eigendecomposition is done once here, in float64."""
    out = {"log_weights": [], "means": [], "eigvals": [], "eigvecs": []}
    for prior in priors:
        w = np.asarray(prior.weights, dtype=np.float64)
        mu = np.asarray(prior.means, dtype=np.float64)
        cov = np.asarray(prior.covariances, dtype=np.float64)
        k, d = mu.shape
        lam, U = np.linalg.eigh(cov)
        pad = k_max - k
        out["log_weights"].append(np.concatenate([np.log(w), np.full(pad, PAD_LOG_WEIGHT)]))
        out["means"].append(np.concatenate([mu, np.zeros((pad, d))]))
        out["eigvals"].append(np.concatenate([lam, np.ones((pad, d))]))
        out["eigvecs"].append(np.concatenate([U, np.broadcast_to(np.eye(d), (pad, d, d))]))
    return {k: torch.as_tensor(np.stack(v), dtype=dtype) for k, v in out.items()}


# --- reference values (autograd-able, for tests) ---------------------------------------------


def bmc_value(P: torch.Tensor, Y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """BMC loss per model, (M,): batch mean of ``2v.detach() * [T1 + T2]`` (Eq. 3.14)."""
    sq = ((P.unsqueeze(2) - Y.unsqueeze(1)) ** 2).sum(-1)  # (M, B, B)
    vv = v.view(-1, 1)
    t1 = torch.diagonal(sq, dim1=1, dim2=2) / (2 * vv)
    t2 = torch.logsumexp(-sq / (2 * vv.unsqueeze(-1)), dim=-1)
    return ((t1 + t2) * (2 * vv).detach()).mean(-1)


def gai_value(
    P: torch.Tensor,
    Y: torch.Tensor,
    v: torch.Tensor,
    log_weights: torch.Tensor,
    means: torch.Tensor,
    covariances: torch.Tensor,
) -> torch.Tensor:
    """GAI loss per model, (M,), from ``MultivariateNormal`` densities (slow; for tests).

    ``log_weights`` (M, K), ``means`` (M, K, d), ``covariances`` (M, K, d, d).
    """
    d = P.shape[-1]
    eye = torch.eye(d, dtype=P.dtype)
    vv = v.view(-1, 1, 1, 1)
    t1 = -MultivariateNormal(P, covariance_matrix=vv * eye).log_prob(Y)
    comp = MultivariateNormal(
        means.unsqueeze(1), covariance_matrix=covariances.unsqueeze(1) + vv.unsqueeze(-1) * eye
    ).log_prob(P.unsqueeze(2))  # (M, B, K)
    t2 = torch.logsumexp(comp + log_weights.unsqueeze(1), dim=-1)
    return ((t1 + t2) * (2 * v.view(-1, 1)).detach()).mean(-1)
