"""``ihmr demo-data``: an offline IHMR-style dataset built on Balanced MSE's own model.

Balanced MSE (paper Sec. 3) assumes that the training and test sets share ``p(x|y)``, that only
the label distribution differs (long-tailed in training, balanced, i.e. uniform, in test), and
that under a balanced label distribution the label given the input is Gaussian and isotropic in
the label space the loss sees (Eq. 3.5: ``p_bal(y|x) = N(y; y_pred, sigma^2 I)``). The demo is
built so that this holds for the pose loss, whose labels are the flattened rotation matrices
(24 x 9 = 216):

1. Every sample belongs to one of five pose families (raised arms, squat, turned torso, kick,
   forward bend), each a path from the standing pose (arms down, severity 0) to an extreme pose
   (severity 1), plus natural variation on every joint axis (the root's included) and a camera
   yaw. Training labels are concentrated: severities from an exponential of scale ``tail_scale``
   truncated to [0, 1], natural variation ``N(0, jitter^2)``, yaw ``N(0, yaw^2)`` (most samples
   stand, facing the camera). Test labels are balanced over the same ranges: severity uniform
   in [0, 1], natural variation uniform in ``[-test_jitter, test_jitter]``, yaw uniform in
   ``[-test_yaw, test_yaw]``, families even. Every direction in which the observation is noisy
   is thus one in which the test set is balanced, as the loss assumes (a test set as narrow as
   training in some direction would reward MSE's shrinkage there; docs/ihmr_train_demo.md).
2. Labels are accurate (like mocap or good fits): the pose, its 2-D / 3-D keypoints and betas.
3. The input is a noisy *observation* of the pose, the same in training and test: every joint's
   rotation is turned by an independent rotation ``exp(w)``, ``w ~ N(0, obs_noise^2 I_3)``, and
   features are a fixed, injective affine map of the observed pose (6-D), the betas (observed
   with noise ``betas_noise``) and the weak-perspective camera,
   ``x = A [rot6d(R_obs), 0.3 betas_obs, camera] + c`` (2048-d), plus a little feature noise.
   The head (SPIN's regressor is affine in its input, then Gram-Schmidt) can therefore output
   ``R_obs`` exactly, and as a function of the label ``p(x|y)`` is
   ``N(vec R; vec R_obs, 2 obs_noise^2 I)`` restricted to rotation matrices
   (``||R - R exp(w)||_F^2 = 2|w|^2`` to second order): the isotropic Gaussian of Eq. 3.5 with
   ``sigma = sqrt(2) obs_noise`` per matrix entry, on the 72-dimensional tangent space of the
   pose manifold (the only directions a rotation-valued prediction can move in).
   :func:`noise_report` measures this on the generated data.

MSE fits ``E_train[y|x]``, pulled towards the standing, camera-facing pose by the concentrated
training labels; Balanced MSE fits ``R_obs``. Label noise (``severity_noise`` along each family
path, ``joint_noise`` on every joint) is kept as an option for studies; the default is none.
Everything is in SPIN's format (``dataset_extras``-style ``.npz``, with extra ``family``,
``severity`` and ``camera`` arrays) plus a feature store per set, on the bundled open body,
seeded.
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
import torch

from ..body import load_body
from ..errors import ConfigError, check_at_least
from ..geometry import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_rot6d
from ..io import check_writable_dir, save_npz, write_json
from .features import write_feature_store
from .spin_data import labels_fingerprint

FAMILIES = ("arms_raised", "squat", "turned_torso", "kick", "forward_bend")
_STAND = {16: (0, 0, -1.2), 17: (0, 0, 1.2)}  # arms down from SMPL's T-pose


@dataclasses.dataclass
class DemoConfig:
    n_train: int = 20000
    """Training samples (long-tailed severities)."""
    n_test: int = 2000
    """Test samples (families even, severity uniform in [0, 1])."""
    seed: int = 0
    """Seed of every random draw, the feature map's included."""
    tail_scale: float = 0.15
    """Scale of the exponential distribution of the training severities."""
    obs_noise: float = 0.1
    """Std (rad) of each axis of the rotation that turns every joint of the *observed* pose (the
    features' source), in training and test alike: the demo's ambiguity."""
    jitter: float = 0.1
    """Training: std (rad) of the natural variation (every joint axis, the root's included)
    around every family prototype."""
    test_jitter: float = 0.35
    """Test: the natural variation is uniform in [-test_jitter, test_jitter] (rad)."""
    yaw: float = 0.35
    """Training: std (rad) of the camera yaw."""
    test_yaw: float = 0.9
    """Test: the camera yaw is uniform in [-test_yaw, test_yaw] (rad)."""
    severity_noise: float = 0.0
    """Label noise for studies: std of the severity (family path) of the pose the features see,
    training only. 0 = accurate labels."""
    joint_noise: float = 0.0
    """Label noise for studies: std (rad) of extra axis-angle noise on every body joint of the
    pose the features see, training only. 0 = accurate labels."""
    betas_noise: float = 0.1
    """Std of the noise on the betas the features see (training and test)."""
    feature_noise: float = 0.01
    """Feature noise std relative to the features' std."""
    feature_dim: int = 2048
    """Feature size (2048 = SPIN's ResNet-50 pool)."""

    def check(self) -> None:
        """Raise :class:`~ihmr.errors.ConfigError` naming the first invalid noise or tail
        setting (counts and the seed are checked by :func:`make_demo`)."""
        for name in (
            "obs_noise",
            "jitter",
            "test_jitter",
            "yaw",
            "test_yaw",
            "severity_noise",
            "joint_noise",
            "betas_noise",
            "feature_noise",
        ):
            v = getattr(self, name)
            if not (v >= 0 and np.isfinite(v)):
                raise ConfigError(f"demo-data: {name} must be a finite number >= 0, got {v}")
        if not self.tail_scale > 0:
            raise ConfigError(f"demo-data: tail_scale must be > 0, got {self.tail_scale}")


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


def _global_orient(yaw: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """Camera-facing orientation (pi about x, SMPL's y up -> image y down), turned by ``yaw``
    (N,) about the body's vertical axis, then by the root's natural variation ``turn`` (N, 3)."""
    flip = axis_angle_to_matrix(torch.tensor([np.pi, 0.0, 0.0], dtype=torch.float64))
    y = np.zeros((len(yaw), 3))
    y[:, 1] = yaw
    r = (
        flip
        @ axis_angle_to_matrix(torch.as_tensor(y))
        @ axis_angle_to_matrix(torch.as_tensor(turn))
    )
    return matrix_to_axis_angle(r).numpy()


def sample_poses(n: int, rng: np.random.Generator, cfg: DemoConfig, train: bool):
    """Label poses (N, 72), the poses the features see (N, 72), family ids (N,), severities (N,).

    The features see the label pose with every joint turned by ``exp(w)``,
    ``w ~ N(0, obs_noise^2 I_3)`` (training and test), after the optional training label noise
    (``severity_noise``, ``joint_noise``)."""
    fam = rng.integers(0, len(FAMILIES), n)
    if train:
        u = rng.random(n)  # inverse CDF of the exponential truncated to [0, 1]
        s = -cfg.tail_scale * np.log1p(-u * (1 - np.exp(-1 / cfg.tail_scale)))
    else:
        s = rng.random(n)
    mirror = rng.random(n) < 0.5
    if train:
        turn = rng.normal(0, cfg.jitter, (n, 24, 3))
        yaw = rng.normal(0, cfg.yaw, n)
    else:
        turn = rng.uniform(-cfg.test_jitter, cfg.test_jitter, (n, 24, 3))
        yaw = rng.uniform(-cfg.test_yaw, cfg.test_yaw, n)
    base = np.zeros((n, 24, 3))
    base[:, 1:] = turn[:, 1:]
    base[:, 0] = _global_orient(yaw, turn[:, 0])
    label = (_family_pose(fam, s, mirror) + base).reshape(n, 24, 3)
    seen = label
    if train and (cfg.severity_noise > 0 or cfg.joint_noise > 0):
        s_seen = np.clip(s + rng.normal(0, cfg.severity_noise, n), -0.4, 1.4)
        seen = _family_pose(fam, s_seen, mirror) + base
        seen[:, 1:] += rng.normal(0, cfg.joint_noise, (n, 23, 3))
    w = rng.normal(0, cfg.obs_noise, (n, 24, 3))

    r = axis_angle_to_matrix(torch.as_tensor(seen)) @ axis_angle_to_matrix(torch.as_tensor(w))
    observed = matrix_to_axis_angle(r).numpy()
    return label.reshape(n, 72), observed.reshape(n, 72), fam, s


class FeatureMap:
    """The fixed random affine map from (pose, betas, camera) to features, seeded.

    ``x = A [rot6d(pose), 0.3 betas, camera] + c``: (157,) -> (dim,), injective for dim >= 157
    (a Gaussian ``A`` has full column rank), so an affine head can invert it exactly. The camera
    (weak-perspective scale and translation, :func:`_camera`) enters as ``5 (s - 0.9)`` and
    ``10 t``, about the size of the other inputs: as in a real crop, the person's scale and
    position are visible.
    """

    INPUTS = 144 + 10 + 3

    def __init__(self, dim: int, seed: int) -> None:
        g = np.random.default_rng([seed, 7919])
        k = self.INPUTS
        self.a = g.normal(0, 1.5 / np.sqrt(k), (k, dim)).astype(np.float32)
        self.c = g.uniform(-1, 1, dim).astype(np.float32)
        digest = hashlib.sha256(b"affine" + self.a.tobytes() + self.c.tobytes()).hexdigest()
        self.fingerprint = "demo-" + digest[:12]

    def __call__(self, pose: np.ndarray, betas: np.ndarray, cam: np.ndarray) -> np.ndarray:
        rot = axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float32).reshape(-1, 24, 3))
        cam_in = np.stack([5.0 * (cam[:, 0] - 0.9), 10.0 * cam[:, 1], 10.0 * cam[:, 2]], 1)
        h = np.concatenate(
            [
                matrix_to_rot6d(rot).reshape(len(pose), 144).numpy(),
                0.3 * betas.astype(np.float32),
                cam_in.astype(np.float32),
            ],
            1,
        )
        return h @ self.a + self.c


def _camera(n: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 3) weak-perspective cameras ``[s, tx, ty]``: scale U(0.8, 1), translation N(0, 0.05)
    in normalised crop units; the same distribution in training and test."""
    return np.concatenate([rng.uniform(0.8, 1.0, (n, 1)), rng.normal(0, 0.05, (n, 2))], 1)


def _joints49(body: Any, betas: Any, pose: Any) -> np.ndarray:
    """(N, 49, 3) SPIN joints (float64 array) of ``pose`` (axis-angle (N, 72) or rotation
    matrices (N, 24, 3, 3)) through the body's joints-only path where it has one."""
    fn = getattr(body, "joints_only", None)
    out = fn(betas, pose) if fn else body(betas=betas, pose=pose)
    return out.joints49.double().numpy()


def _keypoints(body: Any, pose: np.ndarray, betas: np.ndarray, cam: np.ndarray):
    """SPIN ``S`` (N, 24, 4), ``part`` (N, 24, 3), ``openpose`` (N, 25, 3) from the body's
    49 joints, projected with the weak-perspective cameras ``cam`` (N, 3) into a 224 px crop
    (scale 1.12)."""
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        j49 = _joints49(body, t(betas), t(pose))
    n = len(pose)
    s, trans = cam[:, None, :1], cam[:, None, 1:]
    uv = s * (j49[..., :2] + trans)  # normalised crop coordinates in [-1, 1]
    px = 112.0 + 112.0 * uv  # centre (112, 112), 200 * 1.12 = 224 px crop
    ones = lambda k: np.ones((n, k, 1))  # noqa: E731
    gt = j49[:, 25:]
    return (
        np.concatenate([gt - gt[:, [2, 3]].mean(1, keepdims=True), ones(24)], -1),
        np.concatenate([px[:, 25:], ones(24)], -1),
        np.concatenate([px[:, :25], ones(25)], -1),
    )


def noise_report(
    label: np.ndarray, observed: np.ndarray, betas: np.ndarray, body: Any, max_samples: int = 4000
) -> dict[str, Any]:
    """How the demo's ambiguity looks in the label spaces the losses see (the generator knows
    the truth).

    The best balanced predictor of the pose is the observed pose itself (the features are an
    injective function of it), so its error is ``vec(R_obs) - vec(R)`` (216-d). Its covariance
    should be ``sigma^2`` on the 72 tangent directions of the pose manifold and about 0 across
    it (module docstring). Reports the 72 largest eigenvalues' spread (max / min; sampling alone
    gives about ``((1 + sqrt(72/n)) / (1 - sqrt(72/n)))^2``), ``sigma`` = the root of their mean,
    the largest of the other 144 relative to it, and the induced root-mean-square error per
    coordinate of the 3-D joints (m, mid-hip centred) and of the 2-D joints (crop units at the
    demo's mean camera scale 0.9): the natural noise scales of the keypoint losses.
    """
    n = min(len(label), max_samples)
    rot = lambda a: axis_angle_to_matrix(torch.as_tensor(a[:n]).reshape(n, 24, 3))  # noqa: E731
    r_lab, r_obs = rot(label), rot(observed)
    err = (r_obs - r_lab).reshape(n, 216).numpy()
    eig = np.sort(np.linalg.eigvalsh(np.cov(err, rowvar=False)))[::-1]
    top, rest = eig[:72], eig[72:]
    q = np.sqrt(72 / n)
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    b = t(betas[:n])
    with torch.no_grad():
        j_lab, j_obs = (_joints49(body, b, t(r)) for r in (r_lab, r_obs))
    c = lambda j: j[:, 25:] - j[:, [27, 28]].mean(1, keepdims=True)  # noqa: E731  mid-hip
    return {
        "samples": n,
        "pose_sigma": float(np.sqrt(top.mean())),
        "pose_eig_spread": float(top[0] / top[-1]),
        "pose_eig_spread_sampling": float(((1 + q) / (1 - q)) ** 2),
        "pose_off_manifold": float(rest[0] / top.mean()),
        "keypoints3d_rms": float(np.sqrt(((c(j_obs) - c(j_lab)) ** 2).mean())),
        "keypoints2d_rms": float(
            0.9 * np.sqrt(((j_obs[:, 25:, :2] - j_lab[:, 25:, :2]) ** 2).mean())
        ),
    }


def make_demo(
    out: str | os.PathLike = "data/demo", cfg: DemoConfig | None = None, body: Any = None
) -> dict[str, Any]:
    """Generate the demo dataset under ``out``; returns the metadata written to ``demo.json``.

    Layout: ``dataset_extras/demo_{train,test}.npz`` (SPIN format, gender 'n' = neutral body),
    ``features/demo_{train,test}/`` (feature stores), ``demo.json`` (settings, counts and the
    :func:`noise_report` of the training set).
    """
    cfg = cfg or DemoConfig()
    for name, option, least in (
        ("n_train", "--n-train", 1),
        ("n_test", "--n-test", 1),
        ("feature_dim", "--set feature_dim", 1),
        ("seed", "--seed", 0),
    ):
        check_at_least(getattr(cfg, name), least, f"{name} ({option})")
    cfg.check()
    t0 = time.perf_counter()
    out = check_writable_dir(out, "demo data folder")
    if body is None:
        body = load_body("neutral")
    fmap = FeatureMap(cfg.feature_dim, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    meta: dict[str, Any] = {
        "config": dataclasses.asdict(cfg),
        "families": list(FAMILIES),
        "body": str(getattr(body, "name", type(body).__name__)),
        "feature_source": fmap.fingerprint,
        "sets": {},
    }
    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        train = split == "train"
        pose, observed, fam, sev = sample_poses(n, rng, cfg, train)
        betas = rng.normal(0, 1, (n, 10))
        seen_betas = betas + rng.normal(0, cfg.betas_noise, betas.shape)
        cam = _camera(n, rng)
        feats = fmap(observed, seen_betas, cam)
        feats = feats + rng.normal(0, cfg.feature_noise * feats.std(), feats.shape)
        S, part, openpose = _keypoints(body, pose, betas, cam)
        if train:
            meta["noise"] = noise_report(pose, observed, betas, body)
        imgname = np.array([f"demo/{split}/{i:06d}.jpg" for i in range(n)])
        npz = out / "dataset_extras" / f"demo_{split}.npz"
        save_npz(
            npz,
            imgname=imgname,
            center=np.full((n, 2), 112.0),
            scale=np.full(n, 1.12),
            part=part,
            openpose=openpose,
            S=S,
            pose=pose,
            shape=betas,
            has_smpl=np.ones(n),
            gender=np.full(n, "n"),
            family=fam,
            severity=sev,
            camera=cam,
        )
        store = out / "features" / f"demo_{split}"
        write_feature_store(
            store,
            feats.astype(np.float32),
            dataset=f"demo_{split}",
            labels_fingerprint=labels_fingerprint(imgname),
            source_checkpoint="demo feature map",
            source_fingerprint=fmap.fingerprint,
        )
        meta["sets"][split] = {
            "labels": str(npz),
            "features": str(store),
            "count": n,
            "family_counts": np.bincount(fam, minlength=len(FAMILIES)).tolist(),
        }
    meta["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(out / "demo.json", meta)
    return meta


def load_demo_meta(out: str | os.PathLike = "data/demo") -> dict[str, Any] | None:
    """``demo.json`` of a generated demo folder, or None when it has not been generated."""
    p = Path(out) / "demo.json"
    return json.loads(p.read_text()) if p.is_file() else None
