"""Helpers for the pose tests: a toy body with the ``ihmr.body`` interface, SPIN arrays."""

from __future__ import annotations

import types

import numpy as np
import torch

PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def rodrigues(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3), written here so the fixture does not depend on ihmr.geometry."""
    theta = aa.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = aa / theta
    kx, ky, kz = k.unbind(-1)
    z = torch.zeros_like(kx)
    kmat = torch.stack([z, -kz, ky, kz, z, -kx, -ky, kx, z], -1).reshape(*aa.shape[:-1], 3, 3)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=aa.dtype).expand_as(kmat)
    return eye + s * kmat + (1 - c) * kmat @ kmat


class ToyBody:
    name = "toy"

    def __init__(self, seed: int = 0, per_joint: int = 3) -> None:
        g = torch.Generator().manual_seed(seed)
        offs = torch.randn(24, 3, generator=g) * 0.12
        offs[0] = 0
        rest = torch.zeros(24, 3)
        for j in range(1, 24):
            rest[j] = rest[PARENTS[j]] + offs[j]
        self.rest_joints = rest
        self.owner = torch.arange(24).repeat_interleave(per_joint)
        self.v_template = rest[self.owner] + torch.randn(24 * per_joint, 3, generator=g) * 0.05
        self.shapedirs = torch.randn(24 * per_joint, 3, 10, generator=g) * 0.01
        self.jdirs = torch.randn(24, 3, 10, generator=g) * 0.01
        reg = torch.rand(17, 24 * per_joint, generator=g)
        self.J_regressor_h36m = reg / reg.sum(1, keepdim=True)
        self.faces = np.arange(24 * per_joint).reshape(-1, 3)
        mp = torch.tensor([1.0, 0, 0, 1, 0, 0]).repeat(24)
        self.mean_params = {"pose": mp, "shape": torch.zeros(10), "cam": torch.tensor([0.9, 0, 0])}

    def __call__(self, betas, pose):
        b = betas.shape[0]
        rot = rodrigues(pose.reshape(b, 24, 3)) if pose.shape[-1] == 72 else pose
        rot = rot.reshape(b, 24, 3, 3).to(betas.dtype)
        joints_rest = self.rest_joints + torch.einsum("jcs,bs->bjc", self.jdirs, betas)
        verts_rest = self.v_template + torch.einsum("vcs,bs->bvc", self.shapedirs, betas)
        g_rot = [rot[:, 0]]
        g_t = [joints_rest[:, 0]]
        for j in range(1, 24):
            p = PARENTS[j]
            g_rot.append(g_rot[p] @ rot[:, j])
            g_t.append(
                g_t[p] + (g_rot[p] @ (joints_rest[:, j] - joints_rest[:, p])[..., None])[..., 0]
            )
        g_rot = torch.stack(g_rot, 1)
        g_t = torch.stack(g_t, 1)
        local = verts_rest - joints_rest[:, self.owner]
        verts = (g_rot[:, self.owner] @ local[..., None])[..., 0] + g_t[:, self.owner]
        h36m = torch.einsum("kv,bvc->bkc", self.J_regressor_h36m, verts)
        return types.SimpleNamespace(
            vertices=verts,
            joints=g_t,
            joints_h36m=h36m,
            joints49=torch.cat([g_t, g_t[:, :1], g_t], 1),
        )


def spin_arrays(n: int, rng: np.random.Generator, dataset: str = "h36m") -> dict[str, np.ndarray]:
    """Arrays of a valid SPIN dataset file with ``n`` samples (the keys that dataset has)."""
    out = {
        "imgname": np.array([f"images/{dataset}_{i:05d}.jpg" for i in range(n)]),
        "center": rng.uniform(100, 200, (n, 2)),
        "scale": rng.uniform(0.8, 1.2, n),
    }
    if dataset == "h36m_valid":  # SPIN's h36m_valid_protocol{1,2}.npz: imgname, center, scale, S
        out["S"] = np.concatenate([rng.normal(0, 0.3, (n, 24, 3)), np.ones((n, 24, 1))], -1)
        return out
    if dataset != "3dpw":
        out["part"] = np.concatenate([rng.uniform(0, 300, (n, 24, 2)), np.ones((n, 24, 1))], -1)
        out["openpose"] = np.concatenate([rng.uniform(0, 300, (n, 25, 2)), np.ones((n, 25, 1))], -1)
    if dataset in ("h36m", "mpi_inf_3dhp"):
        out["S"] = np.concatenate([rng.normal(0, 0.3, (n, 24, 3)), np.ones((n, 24, 1))], -1)
    if dataset in ("h36m", "mpi_inf_3dhp", "3dpw"):
        out["pose"] = rng.normal(0, 0.2, (n, 72))
        out["shape"] = rng.normal(0, 1, (n, 10))
    if dataset == "3dpw":
        out["gender"] = np.array(["m", "f"])[rng.integers(0, 2, n)]
    return out
