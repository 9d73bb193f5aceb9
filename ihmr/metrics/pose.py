"""Per-sample 3-D pose and mesh errors, as SPIN and the IHMR release evaluate 3DPW.

These functions take meshes and joints; which body made the predicted mesh is the caller's
protocol choice. ``ihmr.pose.evaluate`` follows the IHMR release by default (predicted pose and
betas through the body of the sample's ground-truth gender for MPVPE, the neutral body for the
joints) and offers SPIN's all-neutral variant; see docs/protocols.md.

Inputs are in metres, outputs are per-sample errors in millimetres (shape (B,)), so the
balanced / shot / region aggregation in :mod:`ihmr.metrics.balanced` can average them.

- :func:`mpjpe`: H36M joints from the regressor, both skeletons translated so that their pelvis
  (H36M joint 0) is at the origin, then the 14 LSP joints (``H36M_TO_J14``):
  ``1000 * mean_k |p_k - g_k|``.
- :func:`pa_mpjpe`: the same 14 joints after a per-sample similarity Procrustes alignment of the
  prediction onto the ground truth (scale, rotation with the reflection fix, translation; Umeyama
  1991), solved for the whole batch with one batched 3x3 SVD.
- :func:`mpvpe`: ``1000 * mean_v |p_v - g_v|`` over mesh vertices, no alignment.

Functions accept torch tensors (any float dtype/device; computed in float64 for the SVD) or numpy
arrays (then they return numpy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ShapeError

__all__ = ["mpjpe", "pa_mpjpe", "mpvpe", "procrustes_align", "pose_errors"]

# The 14 LSP joints taken from the 17 H36M joints (SPIN's H36M_TO_J14); pelvis is joint 0.
H36M_TO_J14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
H36M_PELVIS = 0


def _as_tensors(pred: Any, gt: Any, name: str, n_points: int | None):
    is_np = not torch.is_tensor(pred)
    p = torch.as_tensor(np.asarray(pred)) if is_np else pred
    g = torch.as_tensor(np.asarray(gt)) if not torch.is_tensor(gt) else gt.to(p.device)
    if p.ndim != 3 or p.shape[-1] != 3 or (n_points is not None and p.shape[1] != n_points):
        want = f"(B, {n_points}, 3)" if n_points else "(B, N, 3)"
        raise ShapeError(
            f"{name}: prediction must have shape {want} in metres, got {tuple(p.shape)}"
        )
    if tuple(g.shape) != tuple(p.shape):
        raise ShapeError(
            f"{name}: prediction and ground truth must have the same shape, got "
            f"{tuple(p.shape)} and {tuple(g.shape)}"
        )
    if not p.is_floating_point():
        p = p.double()
    return p, g.to(p.dtype), is_np


def _out(x: torch.Tensor, is_np: bool):
    return x.detach().cpu().numpy() if is_np else x


def _lsp14_pelvis_aligned(x: torch.Tensor) -> torch.Tensor:
    idx = torch.tensor(H36M_TO_J14, device=x.device)
    return x[:, idx] - x[:, H36M_PELVIS : H36M_PELVIS + 1]


def mpjpe(pred_h36m: Any, gt_h36m: Any) -> Any:
    """Pelvis-aligned MPJPE on the 14 LSP joints: (B, 17, 3) m, (B, 17, 3) m -> (B,) mm."""
    p, g, is_np = _as_tensors(pred_h36m, gt_h36m, "mpjpe", 17)
    err = (_lsp14_pelvis_aligned(p) - _lsp14_pelvis_aligned(g)).norm(dim=-1).mean(-1)
    return _out(1000.0 * err, is_np)


def procrustes_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity transform of each ``source`` (B, N, 3) onto ``target``, applied to ``source``.

    Umeyama: with centred points ``X``, ``Y`` and ``X^T Y = U S V^T``, the rotation is
    ``R = V D U^T`` with ``D = diag(1, 1, sign det(V U^T))`` (no reflections), the scale
    ``s = tr(D S) / |X|^2`` and the translation ``t = mu_Y - s R mu_X``. Computed in float64.
    """
    x = source.double()
    y = target.double()
    mx, my = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    x0, y0 = x - mx, y - my
    k = x0.transpose(1, 2) @ y0  # (B, 3, 3)
    u, s, vh = torch.linalg.svd(k)
    v = vh.transpose(1, 2)
    d = torch.ones_like(s)
    d[:, 2] = torch.sign(torch.linalg.det(v @ u.transpose(1, 2)))
    d[:, 2] = torch.where(d[:, 2] == 0, torch.ones_like(d[:, 2]), d[:, 2])
    rot = v @ (d[:, :, None] * u.transpose(1, 2))
    var = (x0 * x0).sum((1, 2)).clamp_min(torch.finfo(x.dtype).tiny)
    scale = (d * s).sum(1) / var
    aligned = scale[:, None, None] * (x0 @ rot.transpose(1, 2)) + my
    return aligned.to(source.dtype)


def pa_mpjpe(pred_h36m: Any, gt_h36m: Any) -> Any:
    """Procrustes-aligned MPJPE on the 14 LSP joints: (B, 17, 3) m -> (B,) mm."""
    p, g, is_np = _as_tensors(pred_h36m, gt_h36m, "pa_mpjpe", 17)
    p14, g14 = _lsp14_pelvis_aligned(p), _lsp14_pelvis_aligned(g)
    aligned = procrustes_align(p14, g14)
    return _out(1000.0 * (aligned - g14).norm(dim=-1).mean(-1), is_np)


def mpvpe(pred_vertices: Any, gt_vertices: Any) -> Any:
    """Mean per-vertex position error without alignment: (B, V, 3) m -> (B,) mm."""
    p, g, is_np = _as_tensors(pred_vertices, gt_vertices, "mpvpe", None)
    return _out(1000.0 * (p - g).norm(dim=-1).mean(-1), is_np)


def pose_errors(pred, gt) -> dict[str, torch.Tensor]:
    """The three errors of one batch of :class:`ihmr.body.BodyOutput` pairs: name -> (B,) mm."""
    out = {
        "mpjpe": mpjpe(pred.joints_h36m, gt.joints_h36m),
        "pa_mpjpe": pa_mpjpe(pred.joints_h36m, gt.joints_h36m),
    }
    if pred.vertices is not None and gt.vertices is not None:
        out["mpvpe"] = mpvpe(pred.vertices, gt.vertices)
    return out
