"""Sample-weighted MSE: the reweighting baseline (inverse or square-root inverse label density).

With weights ``w_i ~ p_train(y_i)^-1`` (or ``^-1/2``) the expected weighted loss over the
training distribution approximates the MSE over a balanced label distribution. Weights come
from :mod:`ihmr.priors` (precomputed per training sample).
"""

from __future__ import annotations

import torch

from ..errors import ShapeError, shape_str
from ._common import as_tensor, check_reduction, check_values, no_autocast, prepare_labels


def weighted_mse_loss(
    pred: torch.Tensor,
    target,
    weights=None,
    reduction: str = "mean",
    *,
    normalize_by_dim: bool = False,
) -> torch.Tensor:
    """Sample-weighted squared error ``w_i ||p_i - y_i||^2``.

    The weights are used as given (not renormalised per batch, which would undo the reweighting
    of batches that happen to hold rare labels): normalise them once over the training set,
    e.g. to mean 1, so that ``reduction="mean"`` stays on the MSE scale. Then ``"mean"``, the
    batch average ``(1/B) sum_i w_i ||p_i - y_i||^2``, is an unbiased estimate of the reweighted
    risk. With ``weights=None`` every ``w_i = 1``; with ``normalize_by_dim`` the squared error is
    divided by ``d`` (then ``weights=None`` equals ``torch.nn.functional.mse_loss``).

    Args:
        pred: ``(B,)`` or ``(B, d)``.
        target: same shape as ``pred``.
        weights: ``(B,)`` finite, >= 0, or None.
        reduction: ``"mean"`` (over samples), ``"sum"`` or ``"none"`` (``(B,)``).
        normalize_by_dim: divide each sample's squared error by ``d``.
    """
    check_reduction(reduction)
    p, y = prepare_labels(pred, target)
    one = torch.ones((), dtype=p.dtype, device=p.device)
    tensors = {"pred": p, "target": y}
    extra = None
    if weights is not None:
        w = as_tensor(weights, p.dtype, p.device, "weights")
        if tuple(w.shape) != (p.shape[0],):
            raise ShapeError(
                f"weights must have shape (B,) = ({p.shape[0]},), one per sample, got "
                f"{shape_str(w.shape)}"
            )
        tensors["weights"] = w
        extra = {"weights": ((w >= 0).all(), "weights must be >= 0")}
    check_values(tensors, one, extra)
    with no_autocast(p.device):
        per_sample = (p - y).pow(2).sum(1)
        if normalize_by_dim:
            per_sample = per_sample / p.shape[1]
        if weights is not None:
            per_sample = per_sample * w
        if reduction == "none":
            return per_sample
        return per_sample.sum() if reduction == "sum" else per_sample.mean()
