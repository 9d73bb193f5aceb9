"""Balanced MSE, GMM analytic integration option (GAI, paper Sec. 3.5, Eq. 3.10-3.12).

With a training label prior ``p_train(y) = sum_k phi_k N(y; mu_k, Sigma_k)`` (Eq. 3.10) the
integral of Eq. 3.6 has a closed form (Eq. 3.11, A.11):

    int N(y'; p, vI) p_train(y') dy' = sum_k phi_k N(p; mu_k, Sigma_k + vI),

so the balanced NLL of one sample is (Eq. 3.12)

    L = -log N(y; p, vI) + log sum_k phi_k N(p; mu_k, Sigma_k + vI).

``Sigma_k + vI`` changes whenever a learnable ``v`` does. Factorising it every step is the slow
part of a straightforward implementation; here ``Sigma_k = U_k diag(lambda_k) U_k^T`` is
eigendecomposed once (:func:`prepare_gmm`), so ``Sigma_k + vI = U_k diag(lambda_k + v) U_k^T``
and a step costs one batched projection ``U_k^T (p - mu_k)``.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import DataError, NonFiniteError, ShapeError, shape_str
from ._common import (
    check_reduction,
    check_values,
    combine,
    fill_invalid,
    no_autocast,
    noise_var_tensor,
    prepare_labels,
    valid_mask,
)


class PreparedGMM(NamedTuple):
    """A GMM prior ready for :func:`gai_loss`: ``Sigma_k = U_k diag(eigvals_k) U_k^T``.

    Fields: ``log_weights`` (K,) = log phi_k; ``means`` (K, d); ``eigvals`` (K, d) >= 0;
    ``eigvecs`` (K, d, d) with the eigenvectors as columns.
    """

    log_weights: torch.Tensor
    means: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def to(self, dtype: torch.dtype | None = None, device=None) -> "PreparedGMM":
        return PreparedGMM(*(t.to(device=device, dtype=dtype) for t in self))


def _f64(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64)

    try:
        return torch.from_numpy(np.array(x, dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise TypeError(f"prior.{name} must be an array of numbers, got {type(x).__name__}") from e


def prepare_gmm(prior: Any, dtype: torch.dtype | None = None, device=None) -> PreparedGMM:
    """Validate a GMM prior and eigendecompose its covariances once (float64, then cast).

    Args:
        prior: anything with array-like attributes ``weights`` (K,), ``means`` (K, d) and
            ``covariances`` (K, d, d) (e.g. :class:`ihmr.priors.GMMPrior`, numpy float64), or a
            :class:`PreparedGMM` (then only cast). For d = 1, ``means`` (K,) and
            ``covariances`` (K,) (variances) are accepted too.
        dtype: dtype of the result (default: torch's default dtype, float32).
        device: device of the result (default: CPU).

    Weights that do not sum to 1 are normalised (with a warning); covariances are symmetrised,
    and tiny negative eigenvalues from rounding are set to 0.
    """
    dtype = dtype or torch.get_default_dtype()
    if isinstance(prior, PreparedGMM):
        return prior.to(dtype=dtype, device=device)
    missing = [a for a in ("weights", "means", "covariances") if not hasattr(prior, a)]
    if missing:
        raise TypeError(
            f"prior must have attributes weights (K,), means (K, d) and covariances (K, d, d) "
            f"(e.g. ihmr.priors.GMMPrior) or be a PreparedGMM; {type(prior).__name__} lacks "
            f"{', '.join(missing)}"
        )
    w, mu, cov = (_f64(getattr(prior, a), a) for a in ("weights", "means", "covariances"))
    if mu.ndim == 1:
        mu = mu[:, None]
    if cov.ndim == 1:
        cov = cov[:, None, None]
    k = w.shape[0] if w.ndim == 1 else -1
    if w.ndim != 1 or k == 0 or mu.ndim != 2 or mu.shape[0] != k:
        raise ShapeError(
            f"prior weights must be (K,) and means (K, d) with K >= 1, got "
            f"{shape_str(w.shape)} and {shape_str(mu.shape)}"
        )
    d = mu.shape[1]
    if tuple(cov.shape) != (k, d, d):
        raise ShapeError(
            f"prior covariances must have shape (K, d, d) = {shape_str((k, d, d))} to match means "
            f"{shape_str(mu.shape)}, got {shape_str(cov.shape)}; pass full covariance matrices"
        )
    for name, t in (("weights", w), ("means", mu), ("covariances", cov)):
        if not bool(torch.isfinite(t).all()):
            raise NonFiniteError(f"prior {name} contain NaN or inf; refit the prior")
    if bool((w < 0).any()) or float(w.sum()) <= 0:
        raise DataError(f"prior weights must be >= 0 with a positive sum, got {w.tolist()}")
    if abs(float(w.sum()) - 1.0) > 1e-6:
        warnings.warn(
            f"prior weights sum to {float(w.sum()):.6g}, not 1; normalising them", stacklevel=2
        )
    w = w / w.sum()
    asym = float((cov - cov.transpose(1, 2)).abs().max())
    scale = float(cov.abs().max())
    if asym > 1e-6 * max(scale, 1e-300):
        raise DataError(
            f"prior covariances must be symmetric, got a max asymmetry of {asym:g}; pass "
            "(C + C^T) / 2"
        )
    lam, vec = torch.linalg.eigh(0.5 * (cov + cov.transpose(1, 2)))
    if float(lam.min()) < -1e-8 * max(scale, 1e-300):
        raise DataError(
            f"prior covariances must be positive semi-definite, got an eigenvalue of "
            f"{float(lam.min()):g}; refit the prior (e.g. with reg_covar > 0)"
        )
    return PreparedGMM(w.log(), mu, lam.clamp_min(0.0), vec).to(dtype=dtype, device=device)


def gai_loss(
    pred: torch.Tensor,
    target,
    prior: Any,
    noise_var,
    *,
    mse_weight: float = 1.0,
    balance_weight: float = 1.0,
    normalize_by_dim: bool = False,
    reduction: str = "mean",
    valid=None,
) -> torch.Tensor:
    """Balanced MSE with a GMM prior integrated analytically (GAI, Eq. 3.12).

    Per sample the value is ``(2v).detach() * (mse_weight * T1 + balance_weight * T2)``,
    divided by ``d`` if ``normalize_by_dim``, with

        T1 = ||p - y||^2 / (2v) + (d/2) log v          = -log N(y; p, vI) - (d/2) log 2 pi
        T2 = logsumexp_k[ log phi_k - (1/2) (p - mu_k)^T (Sigma_k + vI)^-1 (p - mu_k)
                          - (1/2) logdet(Sigma_k + vI) ]
           = log int N(y'; p, vI) p_train(y') dy' + (d/2) log 2 pi.

    The two ``(d/2) log 2 pi`` cancel, so with both weights 1 this is exactly ``2v`` times the
    balanced NLL of Eq. 3.12 (all ``v``-dependent terms are kept, so ``noise_var`` gets ``2v``
    times its true gradient).

    Args:
        pred: ``(B,)`` or ``(B, d)`` predictions.
        target: labels, same shape as ``pred``.
        prior: a GMM with ``weights`` (K,), ``means`` (K, d), ``covariances`` (K, d, d), or the
            :class:`PreparedGMM` from :func:`prepare_gmm`. Pass a prepared prior (or use
            :class:`ihmr.losses.GAILoss`) in a training loop: a raw prior is eigendecomposed on
            every call. Cast to ``pred``'s dtype and device.
        noise_var: ``v = sigma**2``, a number or 0-d tensor, finite and > 0.
        mse_weight, balance_weight, normalize_by_dim, reduction, valid: as in
            :func:`bmc_loss` (samples are independent here: ``valid`` only masks the reduction).

    Returns:
        0-d tensor or ``(B,)``; ``pred``'s dtype (float32 for float16/bfloat16 inputs).
    """
    check_reduction(reduction)
    p, y = prepare_labels(pred, target)
    keep = valid_mask(valid, p)
    y = fill_invalid(y, keep)
    gmm = prepare_gmm(prior, dtype=p.dtype, device=p.device)
    d = p.shape[1]
    if gmm.dim != d:
        raise ShapeError(
            f"the prior has label dimension {gmm.dim} but pred/target have d = {d}; fit the prior "
            "on labels of the same representation as the predictions"
        )
    v = noise_var_tensor(noise_var, p)
    check_values({"pred": p, "target": y}, v)
    with no_autocast(p.device):
        t1 = (p - y).pow(2).sum(1) / (2.0 * v) + 0.5 * d * torch.log(v)
        t2 = torch.logsumexp(_component_logits(p, gmm, v), dim=1)
        return combine(
            t1,
            t2,
            v,
            mse_weight=mse_weight,
            balance_weight=balance_weight,
            dim=d,
            normalize_by_dim=normalize_by_dim,
            reduction=reduction,
            valid=keep,
        )


def _component_logits(p: torch.Tensor, gmm: PreparedGMM, v: torch.Tensor) -> torch.Tensor:
    """``log phi_k + log N(p; mu_k, Sigma_k + vI) + (d/2) log 2 pi``, shape (B, K)."""
    # z[b, k] = U_k^T (p_b - mu_k): difference first (no cancellation), then K batched products.
    z = torch.einsum("kbd,kde->bke", p[None, :, :] - gmm.means[:, None, :], gmm.eigvecs)
    s = gmm.eigvals + v  # (K, d): eigenvalues of Sigma_k + vI
    maha = (z.pow(2) / s).sum(-1)  # (B, K)
    logdet = torch.log(s).sum(-1)  # (K,)
    return gmm.log_weights - 0.5 * maha - 0.5 * logdet
