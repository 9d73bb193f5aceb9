"""Joints without vertices: the regressors pre-contracted with the skinning weights.

Every joint that :class:`~ihmr.body.model.BodyModel` reads off the posed mesh (17 H36M, 9 extra,
and the 21 surface points) is ``p_k = sum_v r_kv v_v`` with LBS vertices
``v_v = sum_j w_vj (Rg_j u_v + a_j)``, ``u_v = T_v + D_v c`` (``c`` = betas and pose feature,
217 values; ``a_j = Jg_j - Rg_j J_j``). Swapping the sums:

    p_k = sum_j Rg_j M_kj + c_kj a_j,   M_kj = sum_v r_kv w_vj u_v = M0_kj + Md_kj c,
    c_kj = sum_v r_kv w_vj,

so ``M0`` (K, J, 3), ``Md`` (K, J, 3, 217) and ``c`` (K, J) are computed once, only for the
(k, j) pairs that touch (regressors and weights are sparse), and a forward needs the kinematic
chain plus one (B, 217) x (217, 3P) matmul: no (B, V, 3) tensor is ever built. The 24 SMPL joints
come straight from the chain. Exact up to float rounding (same maths, different order).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .model import BodyModel, BodyOutput, _mv_bl


def _contract(reg: np.ndarray, weights: np.ndarray, template: np.ndarray, dirs: np.ndarray):
    """Pairs (k, j) with their ``c_kj`` (P,), ``M0`` (P, 3) and ``Md`` (P, 3, D), in float64."""
    touch = (np.abs(reg) @ np.abs(weights)) > 0  # (K, J)
    ks, js, cs, m0s, mds = [], [], [], [], []
    for k in range(reg.shape[0]):
        nz = np.flatnonzero(reg[k])
        rw = reg[k, nz, None] * weights[nz]  # (n, J): r_kv w_vj
        for j in np.flatnonzero(touch[k]):
            ks.append(k)
            js.append(j)
            cs.append(rw[:, j].sum())
            m0s.append(rw[:, j] @ template[nz])  # (3,)
            mds.append(np.tensordot(rw[:, j], dirs[nz], axes=(0, 0)))  # (3, D)
    return (
        np.asarray(ks),
        np.asarray(js),
        np.asarray(cs),
        np.asarray(m0s),
        np.stack(mds) if mds else np.zeros((0, 3, dirs.shape[-1])),
    )


class JointsOnly(nn.Module):
    """The pre-contracted joints path of one body (built from it once, then cheap per batch)."""

    def __init__(self, body: BodyModel) -> None:
        super().__init__()
        d = body._data
        n = body.num_vertices
        reg = np.concatenate(
            [np.asarray(d["J_regressor_h36m"]), np.asarray(d["J_regressor_extra"])]
        )
        self.n_points = reg.shape[0]
        self.from_vertices = body.vertex_joints_from == "vertices"
        if self.from_vertices:
            sel = np.zeros((len(body.vertex_joint_ids), n))
            sel[np.arange(sel.shape[0]), body.vertex_joint_ids.cpu().numpy()] = 1.0
            reg = np.concatenate([reg, sel])
        dirs = np.concatenate(
            [np.asarray(d["shapedirs"])[:, :, :10], np.asarray(d["posedirs"]).reshape(n, 3, -1)], 2
        )
        ks, js, cs, m0, md = _contract(
            reg, np.asarray(d["weights"], np.float64), np.asarray(d["v_template"], np.float64), dirs
        )
        dtype = torch.float64  # cast to the input's dtype per call (a few hundred KB)
        self.n_out = reg.shape[0]
        self.register_buffer("pair_joint", torch.as_tensor(js, dtype=torch.long))
        self.register_buffer("pair_c", torch.as_tensor(cs, dtype=dtype))
        self.register_buffer("pair_m0", torch.as_tensor(m0, dtype=dtype))
        # (P * 3, D) so that M = md @ coeff^T + m0 is one matmul.
        self.register_buffer(
            "pair_md",
            torch.as_tensor(np.ascontiguousarray(md.reshape(-1, md.shape[2])), dtype=dtype),
        )
        gather = np.zeros((self.n_out, len(ks)))
        gather[ks, np.arange(len(ks))] = 1.0
        self.register_buffer("gather", torch.as_tensor(gather, dtype=dtype))
        self._cast: dict = {}
        self.body = [body]  # a list, so the body is not registered as a submodule twice

    def forward(self, betas: torch.Tensor, rot: torch.Tensor) -> BodyOutput:
        """(B, 10), (B, 24, 3, 3) -> :class:`BodyOutput` with ``vertices=None``."""
        body = self.body[0]
        key = (betas.device, betas.dtype)
        if key not in self._cast:  # converted once per device/dtype (no copies per step)
            self._cast[key] = {
                k: getattr(self, k).to(device=betas.device, dtype=betas.dtype)
                for k in ("pair_c", "pair_m0", "pair_md", "gather")
            }
            self._cast[key]["pair_joint"] = self.pair_joint.to(betas.device)
        buf = self._cast[key].__getitem__
        b = betas.shape[0]
        rg, tg, ta = body.skinning_transforms_bl(betas, rot)  # batch-last (24, 3, 3, B) ...
        coeff = body.blend_coefficients(betas, rot)
        p = len(self.pair_joint)
        m = (buf("pair_md") @ coeff.T).view(p, 3, b) + buf("pair_m0")[:, :, None]  # (P, 3, B)
        jp = buf("pair_joint")
        contrib = _mv_bl(rg.index_select(0, jp), m) + buf("pair_c")[:, None, None] * (
            ta.index_select(0, jp)
        )
        points = (buf("gather") @ contrib.view(p, 3 * b)).view(self.n_out, 3, b)  # (K, 3, B)
        if self.from_vertices:
            vj = points[self.n_points :]
        else:
            vj = tg.index_select(0, body.vertex_joint_ids)
        return body._assemble_bl(None, tg, points[: self.n_points], vj)
