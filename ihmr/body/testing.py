"""Random bodies in SMPL's file layout, for tests and benchmarks (no licensed data needed).

The arrays are shaped and normalised like real SMPL (sparse, local skinning weights with rows
summing to 1, sparse joint regressors with rows summing to 1, the SMPL tree), but
the values are random: use them to test maths, never to look at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .constants import NUM_JOINTS, NUM_POSE_FEATURES, SMPL_PARENTS

ROOT_PARENT = 4294967295  # how the official files store the root's parent (uint32 -1)


def _rows_from(
    rng: np.random.Generator, pools: list[np.ndarray], n: int, per_row: int
) -> np.ndarray:
    out = np.zeros((len(pools), n))
    for r, pool in enumerate(pools):
        pool = pool if len(pool) else np.arange(n)
        idx = rng.choice(pool, size=min(per_row, len(pool)), replace=False)
        w = rng.uniform(0.1, 1.0, size=len(idx))
        out[r, idx] = w / w.sum()
    return out


def random_body_arrays(
    n_vertices: int = 300, seed: int = 0, vertex_joint_ids: bool = False
) -> dict[str, np.ndarray]:
    """SMPL-layout arrays (the open-body npz contract) of a random body with ``n_vertices``.

    Like SMPL, the structure is local: each vertex belongs to a home joint and is skinned to it,
    its parent and one child (up to 3 joints), and each regressor row averages vertices of one
    body part, so regressors and weights touch few (joint, part) pairs.
    """
    rng = np.random.default_rng(seed)
    n = int(n_vertices)
    parents = np.array(SMPL_PARENTS)
    joints = np.zeros((NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):
        joints[j] = joints[parents[j]] + rng.normal(size=3) * 0.12
    home = rng.integers(0, NUM_JOINTS, size=n)
    verts = joints[home] + rng.normal(size=(n, 3)) * 0.04
    weights = np.zeros((n, NUM_JOINTS))
    children = [np.flatnonzero(parents == j) for j in range(NUM_JOINTS)]
    for v, h in enumerate(home):
        near = (
            [h]
            + ([parents[h]] if h else [])
            + ([rng.choice(children[h])] if len(children[h]) else [])
        )
        weights[v, near] += rng.dirichlet(np.ones(len(near)))
    part = [np.flatnonzero(home == j) for j in range(NUM_JOINTS)]
    d = {
        "v_template": verts.astype(np.float32),
        "shapedirs": (rng.normal(size=(n, 3, 10)) * 0.02).astype(np.float32),
        "posedirs": (rng.normal(size=(n, 3, NUM_POSE_FEATURES)) * 0.002).astype(np.float32),
        "J_regressor": _rows_from(rng, part, n, 12).astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": np.stack(
            [
                np.array((ROOT_PARENT,) + SMPL_PARENTS[1:], np.int64),
                np.arange(NUM_JOINTS, dtype=np.int64),
            ]
        ),
        "f": rng.integers(0, n, size=(2 * n, 3)).astype(np.int64),
        "J_regressor_h36m": _rows_from(rng, [part[j] for j in rng.integers(0, 24, 17)], n, 20),
        "J_regressor_extra": _rows_from(rng, [part[j] for j in rng.integers(0, 24, 9)], n, 20),
    }
    d["J_regressor_h36m"] = d["J_regressor_h36m"].astype(np.float32)
    d["J_regressor_extra"] = d["J_regressor_extra"].astype(np.float32)
    if vertex_joint_ids:
        d["vertex_joint_ids"] = rng.choice(n, size=21, replace=False).astype(np.int64)
    return d


def mean_params_arrays() -> dict[str, np.ndarray]:
    """SPIN-like mean parameters: identity joints, root turned 180 deg about x (image y down)."""
    rot = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    rot[0] = np.diag([1.0, -1.0, -1.0])
    return {
        "pose": rot[:, :, :2].reshape(-1).astype(np.float32),
        "shape": np.zeros(10, np.float32),
        "cam": np.array([0.9, 0.0, 0.0], np.float32),
    }


def write_smpl_folder(
    folder: str | Path,
    n_vertices: int = 300,
    seed: int = 0,
    genders: tuple[str, ...] = ("neutral", "male", "female"),
) -> Path:
    """A fake SMPL folder (``SMPL_<GENDER>.npz`` + companion files); one random body per gender."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, g in enumerate(genders):
        d = random_body_arrays(n_vertices, seed + i)
        np.savez(
            folder / f"SMPL_{g.upper()}.npz",
            **{k: v for k, v in d.items() if not k.startswith("J_regressor_")},
        )
    d = random_body_arrays(n_vertices, seed)
    np.save(folder / "J_regressor_h36m.npy", d["J_regressor_h36m"])
    np.save(folder / "J_regressor_extra.npy", d["J_regressor_extra"])
    np.savez(folder / "smpl_mean_params.npz", **mean_params_arrays())
    return folder
