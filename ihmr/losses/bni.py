"""Balanced MSE, bin-based numerical integration option (BNI, paper Sec. 3.5, Eq. 3.16).

The training label density is known at bin centres ``c_b`` (a histogram, optionally LDS
smoothed, see :mod:`ihmr.priors`) with values ``w_b``; the integral of Eq. 3.6 becomes a sum:

    L = -log N(y; p, vI) + log sum_b w_b N(c_b; p, vI)                          (Eq. 3.16)
      = ||p - y||^2 / (2v) + logsumexp_b( log w_b - ||p - c_b||^2 / (2v) ).

The Gaussian normalisers cancel. Eq. 3.16 omits the bin volume ``Delta`` of the Riemann sum
(``int ~ Delta * sum_b``), so the value is the balanced NLL minus the constant ``log Delta`` (and
it depends on the scale of ``w_b``). It can therefore be negative; that is harmless.
"""

from __future__ import annotations

import torch

from ..errors import ShapeError, shape_str
from ._common import (
    as_tensor,
    check_reduction,
    check_values,
    combine,
    no_autocast,
    noise_var_tensor,
    pairwise_sqdist,
    prepare_labels,
)


def prepare_bins(
    bin_centers, bin_weights, dim: int, dtype: torch.dtype, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the bins against the label dimension; return centres (Nb, d) and weights (Nb,)."""
    c = as_tensor(bin_centers, dtype, device, "bin_centers")
    w = as_tensor(bin_weights, dtype, device, "bin_weights")
    if c.ndim == 1:
        c = c[:, None]
    if c.ndim != 2 or c.shape[0] == 0:
        raise ShapeError(
            f"bin_centers must have shape (Nb,) or (Nb, d) with Nb >= 1, got {shape_str(c.shape)}"
        )
    if c.shape[1] != dim:
        raise ShapeError(
            f"bin_centers have label dimension {c.shape[1]} but pred/target have d = {dim}; pass "
            f"centres of shape (Nb, {dim})"
        )
    if tuple(w.shape) != (c.shape[0],):
        raise ShapeError(
            f"bin_weights must have shape (Nb,) = ({c.shape[0]},) like bin_centers, got "
            f"{shape_str(w.shape)}"
        )
    return c, w


def bni_loss(
    pred: torch.Tensor,
    target,
    bin_centers,
    bin_weights,
    noise_var,
    *,
    mse_weight: float = 1.0,
    balance_weight: float = 1.0,
    normalize_by_dim: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """Balanced MSE with a binned prior integrated numerically (BNI, Eq. 3.16).

    Per sample the value is ``(2v).detach() * (mse_weight * T1 + balance_weight * T2)``,
    divided by ``d`` if ``normalize_by_dim``, with

        T1 = ||p - y||^2 / (2v)
        T2 = logsumexp_b( log w_b - ||p - c_b||^2 / (2v) )     (log 0 = -inf: empty bins drop out)

    so with both weights 1 it is ``2v`` times Eq. 3.16. For densities ``w_b`` on a grid of bin
    volume ``Delta``, ``T2 + log Delta - (d/2) log(2 pi v)`` approximates
    ``log int N(y; p, vI) p_train(y) dy``.

    Args:
        pred: ``(B,)`` or ``(B, d)`` predictions.
        target: labels, same shape as ``pred``.
        bin_centers: ``(Nb,)`` (d = 1) or ``(Nb, d)``.
        bin_weights: ``(Nb,)`` densities (or counts), finite, >= 0, at least one > 0.
        noise_var: ``v = sigma**2``, a number or 0-d tensor, finite and > 0.
        mse_weight, balance_weight, normalize_by_dim, reduction: as in :func:`bmc_loss`.

    Returns:
        0-d tensor or ``(B,)``; ``pred``'s dtype (float32 for float16/bfloat16 inputs).
    """
    check_reduction(reduction)
    p, y = prepare_labels(pred, target)
    c, w = prepare_bins(bin_centers, bin_weights, p.shape[1], p.dtype, p.device)
    v = noise_var_tensor(noise_var, p)
    weights_ok = (w >= 0).all() & (w > 0).any()
    check_values(
        {"pred": p, "target": y, "bin_centers": c, "bin_weights": w},
        v,
        {
            "bin_weights": (
                weights_ok,
                "bin_weights must be >= 0 with at least one > 0; pass the "
                "(smoothed) histogram of the training labels",
            )
        },
    )
    with no_autocast(p.device):
        t1 = (p - y).pow(2).sum(1) / (2.0 * v)
        t2 = torch.logsumexp(torch.log(w) - pairwise_sqdist(p, c) / (2.0 * v), dim=1)
        return combine(
            t1,
            t2,
            v,
            mse_weight=mse_weight,
            balance_weight=balance_weight,
            dim=p.shape[1],
            normalize_by_dim=normalize_by_dim,
            reduction=reduction,
        )
