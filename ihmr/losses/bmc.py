"""Balanced MSE, batch-based Monte-Carlo option (BMC, paper Sec. 3.5, Eq. 3.13-3.15).

The training label distribution is represented by the labels of the batch itself: for the
prediction ``p_i`` of sample ``i`` and the batch targets ``y_1 .. y_N``,

    L_i = -log N(y_i; p_i, vI) + log sum_j N(y_j; p_i, vI)                      (Eq. 3.14)
        = ||p_i - y_i||^2 / (2v) + logsumexp_j( -||p_i - y_j||^2 / (2v) )

(the Gaussian normalisers cancel exactly). This is a cross-entropy over the batch with
temperature ``2v`` and the own target as the correct class (Eq. 3.15). Eq. 3.14 is the sum form:
the Monte-Carlo estimate of Eq. 3.13 divides the sum by N, so L_i is the Monte-Carlo estimate of
the balanced NLL (Eq. 3.6) plus the constant ``log N``.

``groups=G`` splits the label into G equal blocks and balances each against the same block of
the batch's targets (a prior that is a product over the blocks): in many dimensions one softmax
over the whole label puts almost all its weight on the sample's own target, and the balancing
term fades (docs/losses.md, "BMC per block").
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ._common import (
    check_reduction,
    check_values,
    combine,
    fill_invalid,
    no_autocast,
    noise_var_tensor,
    pairwise_sqdist,
    prepare_labels,
    valid_mask,
    warn_single_sample,
)
from .distributed import gather_targets, world_info

# Rows of the (B, N) logit matrix are processed in blocks of about this many elements, so the
# CPU works in cache and memory stays O(block) instead of several (B, N) tensors kept for
# backward. On CUDA one block usually covers the batch (fewer kernel launches).
BLOCK_ELEMENTS = {"cpu": 2**20, "cuda": 2**27}


def _row_blocks(b: int, n: int, device: torch.device):
    step = max(1, BLOCK_ELEMENTS.get(device.type, 2**24) // max(n, 1))
    return [(s, min(b, s + step)) for s in range(0, b, step)]


class _BatchLogSumExp(torch.autograd.Function):
    """``T2_i = logsumexp_j(-coef * ||p_i - y_j||^2)`` with an analytic, recomputing backward.

    Inputs: ``p`` (B, d), ``y`` (N, d), ``coef`` = 1 / (2v) (0-d), ``offset`` (int, the column
    of sample 0's own target, kept exact), ``bias`` (N,) added to the logits or None (0 keeps
    target j, -inf leaves it out; a row with every target left out gives -inf and no gradient).
    With ``s_ij = softmax_j(-coef ||p_i - y_j||^2 + bias_j)``:

        dT2_i/dp_i  = -2 coef (p_i - sum_j s_ij y_j)
        dT2_i/dy_j  =  2 coef s_ij (p_i - y_j)
        dT2_i/dcoef = -sum_j s_ij ||p_i - y_j||^2

    Only the (B,) log-sum-exp is saved; the backward recomputes the logits block by block.
    """

    @staticmethod
    def forward(ctx, p, y, coef, offset, bias):
        out = p.new_empty(p.shape[0])
        for s, e in _row_blocks(p.shape[0], y.shape[0], p.device):
            sq = pairwise_sqdist(p[s:e], y, diag_offset=offset + s)
            logits = sq * (-coef) if bias is None else sq * (-coef) + bias
            out[s:e] = torch.logsumexp(logits, dim=1)
        ctx.save_for_backward(p, y, coef, out, bias)
        ctx.offset = offset
        return out

    @staticmethod
    def backward(ctx, grad):
        p, y, coef, lse, bias = ctx.saved_tensors
        need_p, need_y, need_c = ctx.needs_input_grad[:3]
        if bias is not None:  # rows without any target: lse = -inf, soft = exp(-inf) = 0 below
            lse = torch.where(torch.isfinite(lse), lse, lse.new_zeros(()))
        # Centre both sides (the maths is shift invariant) to limit cancellation in p - s @ y.
        centre = y.mean(0)
        pc, yc = p - centre, y - centre
        gp = torch.empty_like(p) if need_p else None
        gy = torch.zeros_like(y) if need_y else None
        gc = torch.zeros_like(coef) if need_c else None
        for s, e in _row_blocks(p.shape[0], y.shape[0], p.device):
            sq = pairwise_sqdist(p[s:e], y, diag_offset=ctx.offset + s)
            logits = sq * (-coef) if bias is None else sq * (-coef) + bias
            soft = torch.exp(logits - lse[s:e, None])  # (b, N), rows sum to 1
            g = grad[s:e, None]
            if need_p:
                gp[s:e] = (-2.0 * coef) * g * (pc[s:e] - soft @ yc)
            if need_y or need_c:
                gs = soft * g
            if need_y:
                gy = gy + (2.0 * coef) * (gs.T @ pc[s:e] - gs.sum(0)[:, None] * yc)
            if need_c:
                gc = gc - (gs * sq).sum()
        return gp, gy, gc, None, None


def bmc_loss(
    pred: torch.Tensor,
    target,
    noise_var,
    *,
    mse_weight: float = 1.0,
    balance_weight: float = 1.0,
    normalize_by_dim: bool = False,
    reduction: str = "mean",
    gather: bool = False,
    target_weight=None,
    valid=None,
    groups: int | None = None,
) -> torch.Tensor:
    """Balanced MSE with the batch Monte-Carlo integral (BMC).

    Per sample ``i`` the value is ``(2v).detach() * (mse_weight * T1 + balance_weight * T2)``,
    divided by ``d`` if ``normalize_by_dim``, with

        T1 = ||p_i - y_i||^2 / (2v)
        T2 = logsumexp_j( -||p_i - y_j||^2 / (2v) )      over all N targets of the batch.

    With both weights 1 this is exactly ``2v`` times Eq. 3.14 (whose Gaussian normalisers cancel).
    The prediction gradient is then on the MSE scale (``(2v).detach()``) while ``noise_var`` gets
    ``2v`` times the true gradient of Eq. 3.14. ``mse_weight = 60, balance_weight = 2.5,
    normalize_by_dim = True`` reproduces mmhuman3d's released IHMR BMC
    (``[60 ||p-y||^2 / v + 5 LSE] * v.detach() / L``; see :meth:`BMCLoss.mmhuman3d`).

    ``T2`` uses a row-blocked log-sum-exp with an analytic backward that recomputes the
    ``(B, N)`` logits instead of storing them (memory O(B) kept for backward; twice
    differentiable). Pairwise distances are exact differences for ``d <= 8``, and a centred
    matrix product with exactly computed positive pairs above.

    A batch of one sample warns: then ``T2 = -T1`` and the value is
    ``(mse_weight - balance_weight) * ||p - y||^2`` (0 for the paper's weights).

    Args:
        pred: ``(B,)`` or ``(B, d)`` predictions.
        target: labels, same shape as ``pred``.
        noise_var: ``v = sigma**2`` of the isotropic label noise, a number or a 0-d tensor
            (gradients flow into it), finite and > 0.
        mse_weight: weight of ``T1`` (the ``-log N(y; p, vI)`` term).
        balance_weight: weight of ``T2`` (the log-integral / balancing term).
        normalize_by_dim: divide the value by the label dimension ``d``.
        reduction: ``"mean"`` over samples, ``"sum"``, or ``"none"`` for ``(B,)``.
        gather: under ``torch.distributed`` with world size > 1, compare the local predictions
            with the targets of all ranks (local batch sizes may differ; gradients flow to the
            local predictions only). Ignored without a process group. Every rank must call the
            loss when it is set. A rank may then hold an empty batch (``mean`` gives 0).
        target_weight: optional ``(B, d)`` per-coordinate confidences of the targets (>= 0; e.g.
            keypoint visibilities), read as precisions: coordinate ``k`` of target ``j`` has noise
            variance ``v / w_jk``, and ``w_jk = 0`` means the coordinate is missing. Distances
            become ``sum_k w_jk (p_ik - y_jk)^2``, and every target enters ``T2`` with the
            log-normaliser of its observed coordinates relative to a fully observed unit-weight
            target, ``c_j = 1/2 sum_{w_jk > 0} log w_jk + (d - n_j)/2 log(2 pi v)``
            (``T1`` gets ``-c_i``; all ``c`` are 0 without missing coordinates and weights 1, which
            gives the unweighted loss). A target with no observed coordinate takes no part:
            neither as a prediction's own label (its row gives 0 and ``mean`` averages over the
            other rows) nor in ``T2``. Gathered with the targets under ``gather``.
        valid: ``(B,)`` flags (bool, or > 0) or None (all valid). A sample that is not valid
            (e.g. no ground-truth fit) gets no loss and its target does not enter the other
            samples' ``T2``: the result equals the loss of the valid rows alone
            (``pred[valid], target[valid]``; ``mean`` over them, 0 when there are none), but
            shapes stay fixed, so there is no host synchronisation (``torch.compile``, CUDA
            graphs). ``none`` gives 0 for the other samples. With ``target_weight``, an invalid
            sample is one with every weight 0.
        groups: ``G`` (must divide ``d``) or None (= 1). The ``d`` coordinates form ``G`` equal
            consecutive blocks (e.g. 24 joints x 9 rotation-matrix entries) and each block is
            balanced against the same block of the targets:
            ``T2 = sum_g logsumexp_j(-||p_ig - y_jg||^2 / (2v))`` (``T1`` is unchanged), i.e. BMC
            under a training prior that is a product over the blocks. ``target_weight`` then
            applies per block: a block missing from target ``j`` leaves ``j`` out of that block's
            sum only, and a prediction whose own target lacks a block gets no term for it.

    Returns:
        0-d tensor, or ``(B,)`` for ``reduction="none"``; dtype of ``pred`` (float32 for
        float16/bfloat16 inputs).
    """
    check_reduction(reduction)
    distributed = gather and world_info()[1] > 1
    p, y = prepare_labels(pred, target, allow_empty=distributed)
    g = check_groups(groups, p.shape[1])
    v = noise_var_tensor(noise_var, p)
    keep = valid_mask(valid, p)
    y = fill_invalid(y, keep)
    if target_weight is None and g > 1:  # the blocked path works with weights: all ones
        target_weight = torch.ones_like(y)
    if target_weight is not None:
        _, w = prepare_labels(pred, target_weight, allow_empty=distributed)
        if keep is not None:
            w = torch.where(keep[:, None], w, w.new_zeros(()))
        check_values(
            {"pred": p, "target": y, "target_weight": w},
            v,
            {
                "target_weight": (
                    (w >= 0).all(),
                    "target_weight must be >= 0 (a confidence per coordinate, 0 = missing)",
                )
            },
        )
        with no_autocast(p.device):
            return _weighted_bmc(
                p, y, w, v, mse_weight, balance_weight, normalize_by_dim, reduction, distributed, g
            )
    check_values({"pred": p, "target": y}, v)
    with no_autocast(p.device):
        offset, n_local, bias = 0, p.shape[0], None
        if keep is not None:  # log of each target's weight: 0 (kept) or -inf (left out)
            bias = torch.where(keep, 0.0, -math.inf).to(p.dtype)
        if distributed:
            y, offset = gather_targets(y)
            if bias is not None:
                bias = gather_targets(bias[:, None])[0][:, 0]
        if keep is None:
            warn_single_sample(y.shape[0])
        coef = 0.5 / v
        t1 = (p - y[offset : offset + n_local]).pow(2).sum(1) * coef
        t2 = _BatchLogSumExp.apply(p, y, coef, offset, bias)
        return combine(
            t1,
            t2,
            v,
            mse_weight=mse_weight,
            balance_weight=balance_weight,
            dim=p.shape[1],
            normalize_by_dim=normalize_by_dim,
            reduction=reduction,
            valid=keep,
        )


def check_groups(groups: int | None, d: int) -> int:
    """The number of label blocks of ``bmc_loss(groups=...)``: None -> 1; must divide ``d``."""
    if groups is None:
        return 1
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or d % groups:
        raise ConfigError(
            f"groups must be a positive integer that divides the label dimension {d}, got "
            f"{groups!r} (e.g. 24 for 24 joints x 9 rotation-matrix entries)"
        )
    return groups


def _weighted_bmc(
    p, y, w, v, mse_weight, balance_weight, normalize_by_dim, reduction, distributed, groups=1
) -> torch.Tensor:
    """BMC with per-coordinate target weights (see ``target_weight`` of :func:`bmc_loss`), over
    ``groups`` equal blocks of the label (1: the whole label).

    Plain autograd over the (B, N, G) distances (keypoint- and pose-sized problems); no host
    synchronisation and no data-dependent shapes (masks are applied as weights).
    """
    b, d = p.shape
    offset = 0
    if distributed:
        yw, offset = gather_targets(torch.cat([y, w], 1))
        y_all, w_all = yw[:, :d], yw[:, d:]
    else:
        y_all, w_all = y, w
    warn_single_sample(y_all.shape[0])
    n, m = y_all.shape[0], d // groups
    pg, yg, wg = p.reshape(b, groups, m), y_all.reshape(n, groups, m), w_all.reshape(n, groups, m)
    observed = wg > 0
    n_obs = observed.sum(2)  # (N, G)
    has = n_obs > 0  # (N, G) target blocks that take part
    log_w = torch.where(observed, wg, torch.ones_like(wg)).log().sum(2)
    c = 0.5 * log_w + 0.5 * (m - n_obs).to(p.dtype) * torch.log(2.0 * math.pi * v)
    # shift-invariant distances, centred at the targets' weighted mean to limit cancellation
    centre = ((wg * yg).sum(0) / wg.sum(0).clamp_min(1e-12)).detach()  # (G, m)
    pc, yc = pg - centre, yg - centre
    sq = (
        torch.einsum("bgk,ngk->bng", pc.pow(2), wg)
        - 2.0 * torch.einsum("bgk,ngk->bng", pc, wg * yc)
        + (wg * yc.pow(2)).sum(2)[None]
    )  # (B, N, G)
    own = slice(offset, offset + b)
    exact = (wg[own] * (pg - yg[own]).pow(2)).sum(2)  # (B, G)
    sq = torch.diagonal_scatter(sq.clamp_min(0.0), exact.T, offset, dim1=0, dim2=1)
    coef = 0.5 / v
    # a finite floor instead of -inf: a block no target has stays NaN-free in backward
    floor = torch.finfo(sq.dtype).min / 4
    logits = torch.where(has[None], -coef * sq + c[None], torch.full_like(sq, floor))
    t2 = torch.logsumexp(logits, dim=1)  # (B, G)
    t1 = coef * exact - c[own]
    has_own = has[own]
    t1 = torch.where(has_own, t1, torch.zeros_like(t1)).sum(1)
    t2 = torch.where(has_own, t2, torch.zeros_like(t2)).sum(1)
    return combine(
        t1,
        t2,
        v,
        mse_weight=mse_weight,
        balance_weight=balance_weight,
        dim=d,
        normalize_by_dim=normalize_by_dim,
        reduction=reduction,
        valid=has_own.any(1),  # a prediction whose own target has no data: 0, not counted
    )
