"""Checks, label reshaping and reduction shared by the Balanced MSE losses.

Conventions used by every loss in :mod:`ihmr.losses`:

- ``pred`` and ``target`` have shape ``(B,)`` (one label dimension) or ``(B, d)``; internally
  both become ``(B, d)``.
- The compute dtype is ``pred``'s dtype, except that float16 and bfloat16 are computed in
  float32 (autocast is switched off inside the loss), and the loss is then returned in float32.
  Targets, ``noise_var`` and priors are cast to the compute dtype and moved to ``pred``'s device,
  so a float64 prior never promotes a float32 loss to float64.
- The value of one sample is ``(2 v).detach() * (mse_weight * T1 + balance_weight * T2)``,
  divided by ``d`` when ``normalize_by_dim``; ``T1`` and ``T2`` are defined by each loss.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from typing import Iterator

import numpy as np
import torch

from ..errors import DataError, NonFiniteError, ShapeError, check_choice, check_finite, shape_str

REDUCTIONS = ("mean", "sum", "none")

# Element count (B * N * d) up to which pairwise distances are built from exact differences.
DIRECT_LIMIT = 2**24
# Largest label dimension for which the exact differences are used (a matmul is faster above).
DIRECT_MAX_DIM = 8


def compute_dtype(pred: torch.Tensor) -> torch.dtype:
    """The dtype a loss is computed in: ``pred``'s, with half precision raised to float32."""
    if not torch.is_floating_point(pred):
        raise TypeError(
            f"pred must be a floating-point tensor, got dtype {pred.dtype}; convert it with "
            "pred.float()"
        )
    if pred.dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    return pred.dtype


def no_autocast(device: torch.device):
    """A context that disables autocast on ``device``'s type (the losses upcast by themselves)."""
    return torch.autocast(device_type=device.type, enabled=False)


def as_tensor(x, dtype: torch.dtype, device: torch.device, name: str) -> torch.Tensor:
    """``x`` (tensor, array or number) as a tensor of ``dtype`` on ``device``, keeping autograd."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    try:
        return torch.as_tensor(np.asarray(x, dtype=np.float64), device=device).to(dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{name} must be a tensor or an array of numbers, got {type(x).__name__}"
        ) from e


def prepare_labels(
    pred: torch.Tensor, target, *, allow_empty: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``pred``/``target`` and return both as ``(B, d)`` tensors in the compute dtype.

    Args:
        pred: ``(B,)`` or ``(B, d)`` predictions.
        target: same shape as ``pred`` (tensor or array); cast to the compute dtype and device.
        allow_empty: accept ``B = 0`` (only the distributed BMC needs this).
    """
    if not isinstance(pred, torch.Tensor):
        raise TypeError(f"pred must be a torch.Tensor, got {type(pred).__name__}")
    dtype = compute_dtype(pred)
    target = as_tensor(target, dtype, pred.device, "target")
    if pred.ndim not in (1, 2):
        raise ShapeError(
            f"pred must have shape (B,) or (B, d), got {shape_str(pred.shape)}; flatten the label "
            "dimensions first, e.g. pred.reshape(len(pred), -1)"
        )
    if tuple(pred.shape) != tuple(target.shape):
        raise ShapeError(
            f"pred and target must have the same shape, got {shape_str(pred.shape)} and "
            f"{shape_str(target.shape)}; reshape them to (B,) or (B, d) alike"
        )
    if pred.shape[0] == 0 and not allow_empty:
        raise ShapeError(
            f"pred and target hold an empty batch (shape {shape_str(pred.shape)}); skip empty "
            "batches before calling the loss"
        )
    if pred.ndim == 2 and pred.shape[1] == 0:
        raise ShapeError(f"pred has no label dimensions (shape {shape_str(pred.shape)})")
    p = pred.to(dtype)
    if p.ndim == 1:
        p, target = p[:, None], target[:, None]
    return p, target


def valid_mask(valid, like: torch.Tensor) -> torch.Tensor | None:
    """``valid`` (B,) (bool, or numbers where > 0 means valid) as a bool tensor on ``like``'s
    device; None stays None. ``like`` is the (B, d) prediction."""
    if valid is None:
        return None
    v = as_tensor(
        valid,
        valid.dtype if isinstance(valid, torch.Tensor) else torch.float64,
        like.device,
        "valid",
    )
    if tuple(v.shape) != (like.shape[0],):
        raise ShapeError(
            f"valid must have shape (B,) = ({like.shape[0]},), one flag per sample, got "
            f"{shape_str(v.shape)}"
        )
    return v if v.dtype == torch.bool else v > 0


def fill_invalid(y: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Targets ``y`` (B, d) with the rows where ``keep`` is False replaced by the mean of the kept
    rows: whatever an invalid row holds (NaN, huge values) never reaches a value, a gradient or
    the centring of the pairwise distances."""
    if keep is None:
        return y
    k = keep[:, None]
    kept = torch.where(k, y, y.new_zeros(()))
    fill = kept.sum(0) / keep.sum().clamp_min(1).to(y.dtype)
    return torch.where(k, y, fill.detach())


def noise_var_tensor(noise_var, like: torch.Tensor) -> torch.Tensor:
    """``noise_var`` (sigma squared) as a 0-d tensor of ``like``'s dtype and device."""
    v = as_tensor(noise_var, like.dtype, like.device, "noise_var")
    if v.numel() != 1:
        raise ShapeError(
            f"noise_var must be one number (sigma**2 of isotropic noise), got shape "
            f"{shape_str(v.shape)}"
        )
    return v.reshape(())


_VALUE_CHECKS = contextvars.ContextVar("ihmr_loss_value_checks", default=True)


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Switch the losses' value checks (NaN/inf inputs, ``noise_var <= 0``) on or off inside
    the block. They cost one host synchronisation per call on a GPU; a training loop that
    tracks non-finite losses on the device itself (as ``ihmr train`` does) can turn them off.
    Shape and type checks always run (they need no synchronisation).

    Example::

        with value_checks(False):
            loss = bmc_loss(pred, target, noise_var)  # NaN in, NaN out, no host sync
    """
    token = _VALUE_CHECKS.set(bool(enabled))
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def _tracing() -> bool:
    """True under ``torch.compile`` tracing or CUDA graph capture (no host syncs allowed)."""
    if torch.compiler.is_compiling():
        return True
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def check_values(
    tensors: dict[str, torch.Tensor],
    noise_var: torch.Tensor,
    extra: dict[str, tuple[torch.Tensor, str]] | None = None,
) -> None:
    """Raise if a tensor holds NaN/inf, if ``noise_var`` is not finite and > 0, or an extra
    condition fails. One host synchronisation in the common (valid) case; skipped inside
    ``value_checks(False)`` and while ``torch.compile`` traces or a CUDA graph is captured (they
    allow no host synchronisation).

    Args:
        tensors: name -> tensor that must be finite.
        noise_var: the 0-d variance tensor.
        extra: name -> (0-d bool tensor that must be True, message if it is False).
    """
    if _tracing() or not _VALUE_CHECKS.get():  # tracing first: dynamo cannot read ContextVars
        return
    extra = extra or {}
    v = noise_var.detach()
    flags = [torch.isfinite(t.detach()).all() for t in tensors.values()]
    flags.append(torch.isfinite(v) & (v > 0))
    flags.extend(cond for cond, _ in extra.values())
    if bool(torch.stack(flags).all()):
        return
    for name, t in tensors.items():
        check_finite(t, name)
    if not bool(flags[len(tensors)]):
        raise NonFiniteError(
            f"noise_var must be finite and > 0 (it is sigma**2), got {float(v):g}; a learnable "
            "sigma that reached 0 or NaN needs a smaller learning rate or a larger init_noise_sigma"
        )
    for cond, message in extra.values():
        if not bool(cond):
            raise DataError(message)


def check_reduction(reduction: str) -> None:
    check_choice(reduction, REDUCTIONS, "reduction")


def combine(
    t1: torch.Tensor,
    t2: torch.Tensor,
    noise_var: torch.Tensor,
    *,
    mse_weight: float,
    balance_weight: float,
    dim: int,
    normalize_by_dim: bool,
    reduction: str,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample value ``(2v).detach() * (mse_weight*T1 + balance_weight*T2) [/ d]``, reduced.

    ``T1``, ``T2``: ``(B,)``. Returns a 0-d tensor (``mean``/``sum``) or ``(B,)`` (``none``).
    ``mean`` of an empty batch is 0 (still attached to the graph) rather than NaN. With ``valid``
    (B,) bool, the other samples count as 0 (``torch.where``: no gradient, even from an infinite
    value) and ``mean`` averages over the valid ones (0 when there are none).
    """
    per_sample = (2.0 * noise_var).detach() * (mse_weight * t1 + balance_weight * t2)
    if normalize_by_dim:
        per_sample = per_sample / dim
    if valid is not None:
        per_sample = torch.where(valid, per_sample, per_sample.new_zeros(()))
        if reduction == "mean":
            return per_sample.sum() / valid.sum().clamp_min(1).to(per_sample.dtype)
    if reduction == "none":
        return per_sample
    if reduction == "sum" or per_sample.numel() == 0:
        return per_sample.sum()
    return per_sample.mean()


def pairwise_sqdist(
    x: torch.Tensor, y: torch.Tensor, diag_offset: int | None = None
) -> torch.Tensor:
    """Squared Euclidean distances ``D[i, j] = ||x_i - y_j||^2``, shape ``(B, N)``.

    Small problems (``d <= 8`` and ``B * N * d <= 2**24``) use the exact difference. Others use
    ``|x|^2 + |y|^2 - 2 x.y`` on data centred at the mean of ``y`` (exact maths by shift
    invariance, far less cancellation); there, if ``diag_offset`` is given, the entries
    ``D[i, diag_offset + i]`` (BMC's positive pairs) are replaced by exactly computed values,
    because a tiny sigma magnifies their rounding error most.
    """
    b, d = x.shape
    n = y.shape[0]
    if d == 1 and b * n <= DIRECT_LIMIT:
        return (x - y.T).pow(2)
    if d <= DIRECT_MAX_DIM and b * n * d <= DIRECT_LIMIT:
        return (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)
    c = y.detach().mean(0)
    xc, yc = x - c, y - c
    dist = xc.pow(2).sum(1, keepdim=True) + yc.pow(2).sum(1)[None, :] - 2.0 * (xc @ yc.T)
    dist = dist.clamp_min(0.0)
    if diag_offset is not None and b > 0:
        exact = (x - y[diag_offset : diag_offset + b]).pow(2).sum(1)
        dist = torch.diagonal_scatter(dist, exact, diag_offset)
    return dist


def warn_single_sample(n: int) -> None:
    if n == 1:
        warnings.warn(
            "BMC got a batch of one sample: the balancing term needs at least 2 samples (with one, "
            "it equals minus the MSE term, so the loss is (mse_weight - balance_weight) * "
            "||pred - target||^2, i.e. 0 for the paper's weights and no gradient). Use batches of "
            "2 or more (e.g. DataLoader(drop_last=True)).",
            RuntimeWarning,
            stacklevel=3,
        )
