"""``ihmr demo-data``: an offline IHMR-style dataset with the paper's imbalance construction.

Construction (the paper's synthetic recipe, Sec. 4.1 / App. B.1, carried to poses; issue 5):

1. Every sample belongs to one of five pose families (raised arms, squat, turned torso, kick,
   forward bend), each a path from the standing pose (arms down, severity 0) to an extreme pose
   (severity 1). *Observed* training labels have a severity ``s`` drawn from an exponential of
   scale ``tail_scale`` truncated to [0, 1]: most samples stand, extreme poses are rare.
2. The *noise-free* pose has severity ``s + eps``, ``eps ~ N(0, severity_noise)`` (the label
   noise, along the family's path), plus axis-angle noise of ``joint_noise`` rad on every body
   joint. So ``y_observed = y_clean - noise`` with a long-tailed ``p(y_observed)``, exactly the
   1-D construction where MSE regresses towards the frequent labels.
3. Features are a fixed random nonlinear function of the noise-free pose and shape,
   ``x = relu(A [rot6d(pose_clean), 0.3 betas_clean] + c)`` (2048-d, post-ReLU like a ResNet
   pool), plus Gaussian noise of ``feature_noise`` times the features' standard deviation.

Training labels are the observed poses, with 2-D/3-D keypoints computed from them with the body
(every training target carries the same label noise). Test samples have a uniform severity over
evenly drawn families, and noise-free labels. Everything is in SPIN's format
(``dataset_extras``-style ``.npz``, with extra ``family``/``severity`` arrays) plus a feature store
per set, on the bundled open body, seeded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

FAMILIES = ("arms_raised", "squat", "turned_torso", "kick", "forward_bend")
_STAND = {16: (0, 0, -1.2), 17: (0, 0, 1.2)}  # arms down from SMPL's T-pose


@dataclasses.dataclass
class DemoConfig:
    n_train: int = 20000
    """Training samples (observed, long-tailed labels)."""
    n_test: int = 2000
    """Test samples (families even, severity uniform in [0, 1], noise-free labels)."""
    seed: int = 0
    """Seed of every random draw, the feature map's included."""
    tail_scale: float = 0.15
    """Scale of the exponential distribution of the observed training severities."""
    severity_noise: float = 0.15
    """Std of the label noise along the family path (severity units)."""
    joint_noise: float = 0.05
    """Std (rad) of the extra label noise on every body-joint axis-angle component."""
    jitter: float = 0.05
    """Std (rad) of the natural variation around every family prototype."""
    feature_noise: float = 0.1
    """Feature noise std relative to the features' std."""
    feature_dim: int = 2048
    """Feature size (2048 = SPIN's ResNet-50 pool)."""


def _family_pose(family: np.ndarray, s: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(N,) family ids, severities, mirror flags -> (N, 24, 3) body-joint axis-angle."""
    n = len(family)
    pose = np.zeros((n, 24, 3))
    for j, v in _STAND.items():
        pose[:, j] = v
    f = family
    k = s[:, None]
    side = np.where(mirror, -1.0, 1.0)[:, None]
    # raised arms: shoulders swing up (z), elbows bend
    m = f == 0
    pose[m, 16, 2] += 2.4 * s[m]
    pose[m, 17, 2] -= 2.4 * s[m]
    pose[m, 18, 1] -= 1.2 * s[m]
    pose[m, 19, 1] += 1.2 * s[m]
    # squat: hips flex, knees bend, torso leans forward
    m = f == 1
    pose[m, 1, 0] -= 1.7 * s[m]
    pose[m, 2, 0] -= 1.7 * s[m]
    pose[m, 4, 0] += 2.2 * s[m]
    pose[m, 5, 0] += 2.2 * s[m]
    pose[m, 3, 0] += 0.4 * s[m]
    # turned torso: the three spine joints and the neck yaw
    m = f == 2
    for j, a in ((3, 0.4), (6, 0.4), (9, 0.4), (12, 0.25)):
        pose[m, j, 1] += a * (k[m, 0] * side[m, 0])
    # kick: one straight leg swings forward, the opposite arm balances
    m = f == 3
    hip, arm = np.where(mirror[m], 1, 2), np.where(mirror[m], 17, 16)
    rows = np.flatnonzero(m)
    pose[rows, hip, 0] -= 1.8 * s[m]
    pose[rows, arm, 2] += np.where(mirror[m], -1.5, 1.5) * s[m]
    # forward bend: the spine flexes
    m = f == 4
    for j in (3, 6, 9):
        pose[m, j, 0] += 0.5 * s[m]
    return pose


def _global_orient(n: int, rng: np.random.Generator) -> np.ndarray:
    """Camera-facing orientation (pi about x, SMPL's y up -> image y down) with some yaw."""
    import torch

    from ..geometry import axis_angle_to_matrix, matrix_to_axis_angle

    flip = axis_angle_to_matrix(torch.tensor([np.pi, 0.0, 0.0], dtype=torch.float64))
    yaw = np.zeros((n, 3))
    yaw[:, 1] = rng.normal(0, 0.35, n)
    r = flip @ axis_angle_to_matrix(torch.as_tensor(yaw))
    return matrix_to_axis_angle(r).numpy()


def sample_poses(n: int, rng: np.random.Generator, cfg: DemoConfig, train: bool):
    """Observed poses (N, 72), noise-free poses (N, 72), family ids (N,), observed severities (N,).

    Test poses are noise-free (both returned poses are equal)."""
    fam = rng.integers(0, len(FAMILIES), n)
    if train:
        u = rng.random(n)  # inverse CDF of the exponential truncated to [0, 1]
        s = -cfg.tail_scale * np.log1p(-u * (1 - np.exp(-1 / cfg.tail_scale)))
    else:
        s = rng.random(n)
    mirror = rng.random(n) < 0.5
    base = np.zeros((n, 24, 3))
    base[:, 1:] = rng.normal(0, cfg.jitter, (n, 23, 3))
    base[:, 0] = _global_orient(n, rng)
    observed = (_family_pose(fam, s, mirror) + base).reshape(n, 72)
    if not train:
        return observed, observed.copy(), fam, s
    s_clean = np.clip(s + rng.normal(0, cfg.severity_noise, n), -0.4, 1.4)
    clean = _family_pose(fam, s_clean, mirror) + base
    clean[:, 1:] += rng.normal(0, cfg.joint_noise, (n, 23, 3))
    return observed, clean.reshape(n, 72), fam, s


class FeatureMap:
    """The fixed random nonlinear map from (pose, betas) to features, seeded."""

    def __init__(self, dim: int, seed: int) -> None:
        g = np.random.default_rng([seed, 7919])
        self.a = g.normal(0, 1.5 / np.sqrt(154), (154, dim)).astype(np.float32)
        self.c = g.uniform(-1, 1, dim).astype(np.float32)
        digest = hashlib.sha256(self.a.tobytes() + self.c.tobytes()).hexdigest()
        self.fingerprint = "demo-" + digest[:12]

    def __call__(self, pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
        import torch

        from ..geometry import axis_angle_to_matrix, matrix_to_rot6d

        rot = axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float32).reshape(-1, 24, 3))
        h = np.concatenate([matrix_to_rot6d(rot).reshape(len(pose), 144).numpy(),
                            0.3 * betas.astype(np.float32)], 1)
        return np.maximum(h @ self.a + self.c, 0.0)


def _keypoints(body: Any, pose: np.ndarray, betas: np.ndarray, rng: np.random.Generator):
    """SPIN ``S`` (N, 24, 4), ``part`` (N, 24, 3), ``openpose`` (N, 25, 3) from the body's
    49 joints, projected with a weak-perspective camera into a 224 px crop (scale 1.12)."""
    import torch

    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        fn = getattr(body, "joints_only", None)
        out = fn(t(betas), t(pose)) if fn else body(betas=t(betas), pose=t(pose))
    j49 = out.joints49.double().numpy()
    n = len(pose)
    s = rng.uniform(0.8, 1.0, n)[:, None, None]
    trans = rng.normal(0, 0.05, (n, 1, 2))
    uv = s * (j49[..., :2] + trans)  # normalised crop coordinates in [-1, 1]
    px = 112.0 + 112.0 * uv  # centre (112, 112), 200 * 1.12 = 224 px crop
    ones = lambda k: np.ones((n, k, 1))  # noqa: E731
    gt = j49[:, 25:]
    return (np.concatenate([gt - gt[:, [2, 3]].mean(1, keepdims=True), ones(24)], -1),
            np.concatenate([px[:, 25:], ones(24)], -1), np.concatenate([px[:, :25], ones(25)], -1))


def make_demo(out: str | os.PathLike = "data/demo", cfg: DemoConfig | None = None,
              body: Any = None) -> dict[str, Any]:
    """Generate the demo dataset under ``out``; returns the metadata written to ``demo.json``.

    Layout: ``dataset_extras/demo_{train,test}.npz`` (SPIN format, gender 'n' = neutral body),
    ``features/demo_{train,test}/`` (feature stores), ``demo.json``.
    """
    from ..errors import check_at_least
    from ..io import check_writable_dir, save_npz, write_json
    from .features import write_feature_store
    from .spin_data import labels_fingerprint

    cfg = cfg or DemoConfig()
    for name, option, least in (("n_train", "--n-train", 1), ("n_test", "--n-test", 1),
                                ("feature_dim", "--set feature_dim", 1), ("seed", "--seed", 0)):
        check_at_least(getattr(cfg, name), least, f"{name} ({option})")
    t0 = time.perf_counter()
    out = check_writable_dir(out, "demo data folder")
    if body is None:
        from ..body import load_body

        body = load_body("neutral")
    fmap = FeatureMap(cfg.feature_dim, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    meta: dict[str, Any] = {"config": dataclasses.asdict(cfg), "families": list(FAMILIES),
                            "body": str(getattr(body, "name", type(body).__name__)),
                            "feature_source": fmap.fingerprint, "sets": {}}
    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        train = split == "train"
        pose, clean, fam, sev = sample_poses(n, rng, cfg, train)
        betas = rng.normal(0, 1, (n, 10))
        clean_betas = betas + (rng.normal(0, 0.1, betas.shape) if train else 0.0)
        feats = fmap(clean, clean_betas)
        feats = feats + rng.normal(0, cfg.feature_noise * feats.std(), feats.shape)
        S, part, openpose = _keypoints(body, pose, betas, rng)
        imgname = np.array([f"demo/{split}/{i:06d}.jpg" for i in range(n)])
        npz = out / "dataset_extras" / f"demo_{split}.npz"
        save_npz(npz, imgname=imgname, center=np.full((n, 2), 112.0), scale=np.full(n, 1.12),
                 part=part, openpose=openpose, S=S, pose=pose, shape=betas,
                 has_smpl=np.ones(n), gender=np.full(n, "n"), family=fam, severity=sev)
        store = out / "features" / f"demo_{split}"
        write_feature_store(store, feats, dataset=f"demo_{split}",
                            labels_fingerprint=labels_fingerprint(imgname),
                            source_checkpoint="demo feature map",
                            source_fingerprint=fmap.fingerprint)
        meta["sets"][split] = {"labels": str(npz), "features": str(store), "count": n,
                               "family_counts": np.bincount(fam, minlength=len(FAMILIES)).tolist()}
    meta["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(out / "demo.json", meta)
    return meta


def load_demo_meta(out: str | os.PathLike = "data/demo") -> dict[str, Any] | None:
    """``demo.json`` of a generated demo folder, or None when it has not been generated."""
    p = Path(out) / "demo.json"
    return json.loads(p.read_text()) if p.is_file() else None
