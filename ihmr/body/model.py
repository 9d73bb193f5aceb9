"""The batched, chunked SMPL forward: our own vectorised linear blend skinning (LBS).

For shape ``beta`` (10,) and joint rotations ``R_j`` (24, 3, 3) (SMPL, Loper et al. 2015):

1. blend shapes, one matmul: ``v_posed = T + S beta + P vec(R_1..23 - I)``  (V, 3);
2. rest joints ``J = J_reg (T + S beta)``, pre-contracted to ``J0 + Jdirs beta``;
3. kinematic chain, level by level (SMPL's tree has depth 8, so 8 batched products instead of
   23 sequential ones): ``G_j = G_parent(j) [R_j | J_j - J_parent(j)]``;
4. skinning: ``v = sum_j w_vj (Rg_j v_posed + Jg_j - Rg_j J_j)``.

Internally every tensor is *batch-last* ((J, 3, 3, B), (V, 3, B)): gathers along the first axis
copy contiguous blocks and the big products become single GEMMs ((3V, 217) x (217, B) and
(V, 24) x (24, 12 B)), which is several times faster on a CPU than batched tiny products.

Outputs are in metres: vertices, SMPL's 24 joints (the posed ``Jg``), the 17 H36M joints and the 9
extra joints (regressors applied to the posed vertices), and SPIN's 49 joints. All work follows
the dtype and device of the inputs; large batches run in chunks so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ShapeError
from ..geometry import axis_angle_to_matrix
from .constants import (
    NUM_BETAS,
    NUM_JOINTS,
    NUM_POSE_FEATURES,
    SMPL_NUM_VERTICES,
    SMPL_VERTEX_JOINT_IDS,
    SPIN_JOINT_MAP,
    VERTEX_JOINT_FALLBACK,
)
from .files import to_smplx


@dataclass
class BodyOutput:
    """Result of a body forward, all in metres; ``vertices`` is None on the joints-only path."""

    vertices: torch.Tensor | None  # (B, V, 3)
    joints: torch.Tensor  # (B, 24, 3) SMPL joints
    joints_h36m: torch.Tensor  # (B, 17, 3)
    joints49: torch.Tensor  # (B, 49, 3) SPIN: 25 OpenPose + 24 ground-truth joints

    def __getitem__(self, idx: Any) -> "BodyOutput":
        v = None if self.vertices is None else self.vertices[idx]
        return BodyOutput(v, self.joints[idx], self.joints_h36m[idx], self.joints49[idx])


def _cat(outs: Sequence[BodyOutput]) -> BodyOutput:
    v = None if outs[0].vertices is None else torch.cat([o.vertices for o in outs])
    return BodyOutput(
        v,
        torch.cat([o.joints for o in outs]),
        torch.cat([o.joints_h36m for o in outs]),
        torch.cat([o.joints49 for o in outs]),
    )


def _mm_bl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batch-last (n, 3, 3, B) @ (n, 3, 3, B) -> (n, 3, 3, B), as three fused multiply-adds."""
    out = a[:, :, 0, None] * b[:, None, 0]
    out = torch.addcmul(out, a[:, :, 1, None], b[:, None, 1])
    return torch.addcmul(out, a[:, :, 2, None], b[:, None, 2])


def _mv_bl(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batch-last (n, 3, 3, B) @ (n, 3, B) -> (n, 3, B)."""
    out = a[:, :, 0] * v[:, None, 0]
    out = torch.addcmul(out, a[:, :, 1], v[:, None, 1])
    return torch.addcmul(out, a[:, :, 2], v[:, None, 2])


def chain_levels(parents: Sequence[int]) -> list[list[int]]:
    """Joints grouped by depth in the tree (root excluded), each level after its parents."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return [[j for j in range(len(parents)) if depth[j] == d] for d in range(1, max(depth) + 1)]


class KinematicChain(nn.Module):
    """Local rotations + rest joints -> global rotations and joint positions, level by level."""

    def __init__(self, parents: Sequence[int]) -> None:
        super().__init__()
        self.parents = tuple(int(p) for p in parents)
        order, self._levels = [0], []
        for lvl in chain_levels(self.parents):
            pos = [order.index(self.parents[j]) for j in lvl]
            self._levels.append((lvl, pos))
            order += lvl
        self.register_buffer(
            "_par", torch.tensor([max(p, 0) for p in self.parents]), persistent=False
        )
        self.register_buffer("_inv", torch.from_numpy(np.argsort(order)), persistent=False)
        for i, (lvl, pos) in enumerate(self._levels):
            self.register_buffer(f"_lvl{i}", torch.tensor(lvl), persistent=False)
            self.register_buffer(f"_pos{i}", torch.tensor(pos), persistent=False)

    def forward(self, rotmats: torch.Tensor, joints: torch.Tensor):
        """(B, J, 3, 3), (B, J, 3) rest joints -> global (B, J, 3, 3) and posed joints (B, J, 3)."""
        rg, tg = self.forward_bl(rotmats.permute(1, 2, 3, 0), joints.permute(1, 2, 0))
        return rg.permute(3, 0, 1, 2), tg.permute(2, 0, 1)

    def forward_bl(self, rotmats: torch.Tensor, joints: torch.Tensor):
        """Batch-last: (J, 3, 3, B), (J, 3, B) -> (J, 3, 3, B), (J, 3, B)."""
        rel = torch.cat([joints[:1], joints[1:] - joints.index_select(0, self._par[1:])], 0)
        rg, tg = rotmats[:1], joints[:1]
        for i in range(len(self._levels)):
            lvl, pos = getattr(self, f"_lvl{i}"), getattr(self, f"_pos{i}")
            rp, tp = rg.index_select(0, pos), tg.index_select(0, pos)
            rg = torch.cat([rg, _mm_bl(rp, rotmats.index_select(0, lvl))], 0)
            tg = torch.cat([tg, _mv_bl(rp, rel.index_select(0, lvl)) + tp], 0)
        return rg.index_select(0, self._inv), tg.index_select(0, self._inv)


def pose_to_rotmats(pose: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3, 3) rotation matrices, or (B, 72) / (B, 24, 3) axis-angle -> (B, 24, 3, 3)."""
    if pose.ndim == 4 and pose.shape[1:] == (NUM_JOINTS, 3, 3):
        return pose
    if pose.ndim == 2 and pose.shape[1] == 3 * NUM_JOINTS:
        return axis_angle_to_matrix(pose.reshape(-1, NUM_JOINTS, 3))
    if pose.ndim == 3 and pose.shape[1:] == (NUM_JOINTS, 3):
        return axis_angle_to_matrix(pose)
    raise ShapeError(
        f"pose must be rotation matrices (B, 24, 3, 3) or axis-angle (B, 72) / (B, 24, 3), got "
        f"{tuple(pose.shape)}"
    )


class BodyModel(nn.Module):
    """An SMPL-layout body (real SMPL or the open body) with a batched, chunked forward.

    Call ``body(betas, pose)``: ``betas`` (B, 10), ``pose`` (B, 24, 3, 3) rotation matrices or
    (B, 72) axis-angle; returns :class:`BodyOutput` in metres. ``body.joints_only(...)`` gives the
    same joints without building vertices (see :mod:`ihmr.body.joints_only`).
    """

    def __init__(
        self,
        data: Mapping[str, np.ndarray],
        mean_params: Mapping[str, np.ndarray],
        name: str = "body",
        gender: str = "neutral",
        chunk_size: int = 1024,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.name, self.gender, self.chunk_size = name, gender, int(chunk_size)
        self.block_bytes = 1 << 23  # per-vertex transforms per vertex block (cache-sized, CPU)
        v = np.asarray(data["v_template"], np.float64)
        n = v.shape[0]
        self.num_vertices = n
        self.faces = np.asarray(data["f"], np.int64)
        sd, pd = data["shapedirs"][:, :, :NUM_BETAS], data["posedirs"]
        # (V * 3, 10 + 207 + 1): shape and pose blend shapes and the template in one matmul.
        dirs = np.concatenate(
            [sd.reshape(3 * n, -1), pd.reshape(3 * n, -1), v.reshape(3 * n, 1)], 1
        )
        jreg = np.asarray(data["J_regressor"], np.float64)
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
        self.register_buffer("v_template", t(v))
        self.register_buffer("blend_dirs", t(dirs))
        self.register_buffer("j_template", t(jreg @ v))
        self.register_buffer("j_dirs", t(np.einsum("jv,vcb->jcb", jreg, sd).reshape(-1, NUM_BETAS)))
        self.register_buffer("weights", t(data["weights"]))
        # H36M (17) and extra (9) regressors act on the posed vertices; they are sparse, so only
        # the vertices they read are gathered: (m, 26) with the m used columns.
        reg = np.concatenate([data["J_regressor_h36m"], data["J_regressor_extra"]])
        cols = np.flatnonzero(np.abs(reg).sum(0) > 0)
        self.register_buffer("point_cols", torch.as_tensor(cols, dtype=torch.long))
        self.register_buffer("point_regressor", t(reg[:, cols]))
        self.register_buffer("faces_tensor", torch.as_tensor(self.faces))
        if "vertex_joint_ids" in data:
            ids, self.vertex_joints_from = np.asarray(data["vertex_joint_ids"]), "vertices"
        elif n == SMPL_NUM_VERTICES:
            ids, self.vertex_joints_from = np.asarray(SMPL_VERTEX_JOINT_IDS), "vertices"
        else:  # other topology, no ids shipped: nearest SMPL joint (documented approximation)
            ids, self.vertex_joints_from = np.asarray(VERTEX_JOINT_FALLBACK), "joints"
        self.register_buffer("vertex_joint_ids", torch.as_tensor(ids, dtype=torch.long))
        self.register_buffer("spin_map", torch.tensor(SPIN_JOINT_MAP), persistent=False)
        self.chain = KinematicChain(data["parents"])
        self.register_buffer("mean_pose6d", t(mean_params["pose"]))
        self.register_buffer("mean_shape", t(mean_params["shape"]))
        self.register_buffer("mean_cam", t(mean_params["cam"]))
        self._data = data  # kept for the joints-only pre-contraction and smplx()
        self._joints_only: nn.Module | None = None
        self._cast: dict = {}

    # ------------------------------------------------------------------ inputs
    @property
    def mean_params(self) -> dict[str, torch.Tensor]:
        """SPIN-style mean parameters: ``pose`` (144,) 6-D, ``shape`` (10,), ``cam`` (3,)."""
        return {"pose": self.mean_pose6d, "shape": self.mean_shape, "cam": self.mean_cam}

    def _inputs(self, betas: torch.Tensor, pose: torch.Tensor):
        if not (torch.is_tensor(betas) and torch.is_tensor(pose)):
            raise TypeError("betas and pose must be torch tensors")
        if betas.ndim != 2 or betas.shape[1] != NUM_BETAS:
            raise ShapeError(f"betas must have shape (B, {NUM_BETAS}), got {tuple(betas.shape)}")
        rot = pose_to_rotmats(pose)
        if rot.shape[0] != betas.shape[0]:
            raise ShapeError(
                f"betas and pose must have the same batch size, got "
                f"{betas.shape[0]} and {rot.shape[0]}"
            )
        if not betas.is_floating_point():
            raise TypeError(f"betas must be floating point, got {betas.dtype}")
        return betas, rot.to(betas.dtype)

    def _buf(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """Buffer ``name`` on ``like``'s device and dtype (converted copies are kept, once each)."""
        buf = getattr(self, name)
        if buf.device == like.device and buf.dtype == like.dtype:
            return buf
        key = (name, buf.device, like.device, like.dtype)
        if key not in self._cast:
            self._cast[key] = buf.to(device=like.device, dtype=like.dtype)
        return self._cast[key]

    # ------------------------------------------------------------------ forward
    def forward(
        self, betas: torch.Tensor, pose: torch.Tensor, chunk_size: int | None = None
    ) -> BodyOutput:
        """Full forward with vertices; batches above ``chunk_size`` run chunk by chunk."""
        betas, rot = self._inputs(betas, pose)
        size = chunk_size or self.chunk_size
        if betas.shape[0] <= size:
            return self._forward(betas, rot)
        return _cat(
            [
                self._forward(betas[i : i + size], rot[i : i + size])
                for i in range(0, betas.shape[0], size)
            ]
        )

    def chunks(
        self, betas: torch.Tensor, pose: torch.Tensor, chunk_size: int | None = None
    ) -> Iterator[tuple[slice, BodyOutput]]:
        """Yield ``(slice, output)`` chunk by chunk: stream a large set with bounded memory."""
        betas, rot = self._inputs(betas, pose)
        size = chunk_size or self.chunk_size
        for i in range(0, betas.shape[0], size):
            yield slice(i, i + size), self._forward(betas[i : i + size], rot[i : i + size])

    @staticmethod
    def blend_coefficients(betas: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        """(B, 10 + 207): betas and pose feature vec(R_1..23 - I) of SMPL's pose blend shapes."""
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        return torch.cat([betas, (rot[:, 1:] - eye).reshape(rot.shape[0], NUM_POSE_FEATURES)], 1)

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """(B, 10) -> (B, 24, 3) joints of the shaped body in the rest pose."""
        return self._rest_joints_bl(betas).permute(2, 0, 1)

    def _rest_joints_bl(self, betas: torch.Tensor) -> torch.Tensor:
        jt = self._buf("j_template", betas)
        j = (self._buf("j_dirs", betas) @ betas.T).view(NUM_JOINTS, 3, betas.shape[0])
        return j + jt[:, :, None]

    def skinning_transforms_bl(self, betas: torch.Tensor, rot: torch.Tensor):
        """Batch-last global rotations (24, 3, 3, B), posed joints (24, 3, B), LBS translations
        ``Jg - Rg J`` (24, 3, B)."""
        j_rest = self._rest_joints_bl(betas)
        rg, tg = self.chain.forward_bl(rot.permute(1, 2, 3, 0), j_rest)
        return rg, tg, tg - _mv_bl(rg, j_rest)

    def _forward(self, betas: torch.Tensor, rot: torch.Tensor) -> BodyOutput:
        b, n = betas.shape[0], self.num_vertices
        ones = torch.ones(b, 1, dtype=betas.dtype, device=betas.device)
        coeff = torch.cat([self.blend_coefficients(betas, rot), ones], 1).T.contiguous()
        rg, tg, ta = self.skinning_transforms_bl(betas, rot)
        # Per-joint affine maps as rows [Rg^T; t] (24, 4, 3, B), blended per vertex by one GEMM.
        a = torch.cat([rg.transpose(1, 2), ta[:, None]], 1).reshape(NUM_JOINTS, 12 * b)
        dirs, weights = self._buf("blend_dirs", betas), self._buf("weights", betas)
        # Vertex blocks small enough (~4 MB of per-vertex transforms) to stay in cache.
        step = n if betas.is_cuda else max(32, min(n, self.block_bytes // (48 * max(b, 1))))
        blocks = []
        for s in range(0, n, step):
            e = min(n, s + step)
            u = (dirs[3 * s : 3 * e] @ coeff).view(e - s, 3, b)  # posed rest vertices
            tv = (weights[s:e] @ a).view(e - s, 4, 3, b)
            v = torch.addcmul(tv[:, 3], tv[:, 0], u[:, 0:1])
            v = torch.addcmul(v, tv[:, 1], u[:, 1:2])
            blocks.append(torch.addcmul(v, tv[:, 2], u[:, 2:3]).permute(2, 0, 1))
        verts = torch.cat(blocks, 1) if len(blocks) > 1 else blocks[0].contiguous()  # (B, V, 3)
        m = len(self.point_cols)
        picked = verts.index_select(1, self.point_cols).permute(1, 2, 0).reshape(m, 3 * b)
        points = (self._buf("point_regressor", betas) @ picked).view(26, 3, b)
        if self.vertex_joints_from == "vertices":
            vj = verts.index_select(1, self.vertex_joint_ids).permute(1, 2, 0)
        else:
            vj = tg.index_select(0, self.vertex_joint_ids)
        return self._assemble_bl(verts, tg, points, vj)

    def _assemble_bl(self, verts, joints, points, vjoints) -> BodyOutput:
        """Batch-last joints, points (26, 3, B) and surface points -> :class:`BodyOutput`
        (batch first, contiguous); ``verts`` is already (B, V, 3) or None."""
        stacked = torch.cat([joints, vjoints, points[17:]], 0)  # 24 + 21 + 9 = 54 points
        out = lambda x: x.permute(2, 0, 1).contiguous()  # noqa: E731
        return BodyOutput(
            verts, out(joints), out(points[:17]), out(stacked.index_select(0, self.spin_map))
        )

    # ------------------------------------------------------------------ joints only
    def joints_only(self, betas: torch.Tensor, pose: torch.Tensor) -> BodyOutput:
        """Same joints as :meth:`forward`, without any vertex tensor (for training)."""
        betas, rot = self._inputs(betas, pose)
        if self._joints_only is None:
            from .joints_only import JointsOnly  # here: joints_only imports this module

            self._joints_only = JointsOnly(self)
        return self._joints_only(betas, rot)

    def smplx(self):
        """The same body as an ``smplx.SMPLLayer`` (float32), for code that wants smplx's API."""
        return to_smplx(self._data, gender=self.gender)

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, gender={self.gender!r}, vertices={self.num_vertices}, "
            f"faces={len(self.faces)}, chunk_size={self.chunk_size}"
        )
