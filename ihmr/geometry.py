"""Rotation conversions and distances, for any batch shape.

Conventions (fixed here, used everywhere in ``ihmr``):

- Rotation matrices act on column vectors, ``x' = R @ x``; shape ``(..., 3, 3)``.
- Axis-angle ``r`` (shape ``(..., 3)``) is the unit axis times the angle in radians, as in SMPL's
  72-d pose vector; ``R = exp([r]_x)`` (Rodrigues' formula).
- The 6-D representation is SPIN's (Zhou et al. 2019) *interleaved* layout: the first two
  columns ``a1, a2`` of ``R`` stored row by row, ``[a1x, a2x, a1y, a2y, a1z, a2z]``, i.e.
  ``R[..., :, :2].reshape(..., 6)``. Decoding applies Gram-Schmidt and ``b3 = b1 x b2``.

All functions are pure, differentiable, keep the input's dtype and device, and never modify
their inputs. Corner cases (angle 0, angle pi) are handled without NaN values or gradients.
"""

from __future__ import annotations

import torch

from .errors import ShapeError

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "rot6d_to_matrix",
    "matrix_to_rot6d",
    "geodesic_distance",
]

# Below this squared angle the Rodrigues coefficients switch to their Taylor series.
_SMALL_SQ = 1e-6


def _check_last(x: torch.Tensor, dims: tuple[int, ...], name: str) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < len(dims) or tuple(x.shape[x.ndim - len(dims) :]) != dims:
        want = "(..., " + ", ".join(map(str, dims)) + ")"
        raise ShapeError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix ``[v]_x``."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape + (3,))


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: (..., 3) axis-angle -> (..., 3, 3) rotation matrix.

    ``R = I + a [r]_x + b [r]_x^2`` with ``a = sin(t)/t``, ``b = (1 - cos t)/t^2``, ``t = |r|``;
    both coefficients use their Taylor series near ``t = 0`` so values and gradients stay finite.
    """
    _check_last(axis_angle, (3,), "axis_angle")
    r = axis_angle
    t2 = (r * r).sum(-1)
    small = t2 < _SMALL_SQ
    t = torch.sqrt(torch.where(small, torch.ones_like(t2), t2))
    a = torch.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, (1.0 - torch.cos(t)) / (t * t))
    k = _skew(r)
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand(k.shape)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def _sqrt_pos(x: torch.Tensor) -> torch.Tensor:
    # sqrt with a zero (not infinite) gradient where x <= 0.
    pos = x > 0
    return torch.where(
        pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x)
    )


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 4) unit quaternion ``(w, x, y, z)`` with ``w >= 0``.

    Shepperd's method: each of the four components is recovered from the largest of
    ``1 + tr``, ``1 + 2 R_ii - tr``, so no division by a small number happens near angle pi.
    """
    _check_last(matrix, (3, 3), "matrix")
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # q_abs[i] = 2 |q_i|
    q_abs = _sqrt_pos(
        torch.stack(
            [
                1.0 + m00 + m11 + m22,
                1.0 + m00 - m11 - m22,
                1.0 - m00 + m11 - m22,
                1.0 - m00 - m11 + m22,
            ],
            dim=-1,
        )
    )
    # Row i: 4 q_i * q (each entry computed from the matrix), for i = w, x, y, z.
    cands = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    )
    floor = torch.tensor(0.1, dtype=m.dtype, device=m.device)
    cands = cands / (2.0 * torch.maximum(q_abs, floor))[..., None]
    best = q_abs.argmax(dim=-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = torch.where(q[..., :1] < 0, -q, q)
    return q / q.norm(dim=-1, keepdim=True)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 3) axis-angle with angle in [0, pi].

    Goes through the quaternion ``(w, v)``: ``r = v * 2 atan2(|v|, w) / |v|``, with the ratio's
    series ``2/w (1 - |v|^2 / (3 w^2))`` near ``|v| = 0``. At exactly pi the sign of the axis is
    arbitrary (both signs give the same rotation).
    """
    q = matrix_to_quaternion(matrix)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(-1)
    small = n2 < _SMALL_SQ
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    w_safe = torch.where(small, w, torch.ones_like(w))  # w ~ 1 where small
    ratio = torch.where(
        small, 2.0 / w_safe * (1.0 - n2 / (3.0 * w_safe * w_safe)), 2.0 * torch.atan2(n, w) / n
    )
    return v * ratio[..., None]


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """SPIN's 6-D representation (..., 6), interleaved layout -> (..., 3, 3) rotation matrix.

    ``a1 = x[..., 0::2]``, ``a2 = x[..., 1::2]``; ``b1 = a1/|a1|``,
    ``b2 = normalise(a2 - (b1.a2) b1)``, ``b3 = b1 x b2``; ``R = [b1 b2 b3]`` (columns).
    """
    _check_last(x, (6,), "rot6d")
    cols = x.reshape(x.shape[:-1] + (3, 2))
    a1, a2 = cols[..., 0], cols[..., 1]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 6) in SPIN's interleaved layout (first two columns)."""
    _check_last(matrix, (3, 3), "matrix")
    return matrix[..., :, :2].reshape(matrix.shape[:-2] + (6,))


def geodesic_distance(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle in radians, in [0, pi], of the relative rotation ``r1^T r2``: (..., 3, 3) -> (...).

    Computed as ``atan2(|vee(M - M^T)| / 2, (tr M - 1) / 2)``, accurate at both ends of the
    range (``arccos`` of the trace loses precision near 0 and pi). Shapes must broadcast.
    """
    _check_last(r1, (3, 3), "r1")
    _check_last(r2, (3, 3), "r2")
    m = r1.transpose(-1, -2) @ r2
    s = torch.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]],
        dim=-1,
    )
    s2 = (s * s).sum(-1)
    pos = s2 > 0
    sin = 0.5 * torch.where(
        pos, torch.sqrt(torch.where(pos, s2, torch.ones_like(s2))), torch.zeros_like(s2)
    )
    cos = 0.5 * (m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1.0)
    return torch.atan2(sin, cos)
