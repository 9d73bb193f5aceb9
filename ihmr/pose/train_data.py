"""Training data of ``ihmr train``: labels and cached features as device tensors, and the sampler.

Every training dataset (SPIN labels + optional static fits + its feature store) is checked
(labels fingerprint of each store, one backbone for all stores) and turned into flat tensors:

========== ============== ===========================================================
key        shape          meaning
========== ============== ===========================================================
features   (R, D) f16     one row per (sample, view)
pose       (R, 216)       flattened rotation matrices: GT SMPL where the sample has it, else the
                          static fit (when the dataset has fits)
betas      (R, 10)        betas, chosen like pose (a fit's betas zeroed when any |beta| > 3)
valid      (R,)           1.0 where pose/betas are labels: GT SMPL, or a fit whose 2-D fitting
                          loss is below ``data.fit_loss_threshold`` (:mod:`ihmr.pose.fits`)
kp3d       (R, 24, 4)     3-D joints [x, y, z, conf] (m)
has3d      (R,)           1.0 where the sample has 3-D joints
kp2d       (R, 49, 3)     25 OpenPose + 24 GT 2-D joints in crop coordinates [-1, 1] + conf
========== ============== ===========================================================

Rows: a store without cached views (or ``data.views: false``) gives one row per sample (R = N,
view 0, the un-augmented crop). A store with K cached augmented views (``ihmr extract-features
--views K``) gives 1 + K consecutive rows per sample: row ``row0[i] + k`` is view k of sample i,
with the view's features and its transformed labels (2-D/3-D keypoints from
``FeatureStore.view_labels()``; the pose: the stored transformed GT pose, or, for a dataset whose
pose comes from SPIN's static fits, the fit's pose put through the same flip and in-plane rotation,
:func:`augment_rotmats`, the batched rotation-matrix form of :func:`ihmr.pose.crop.transform_pose`).
Each draw of sample i picks a view uniformly in 0..K (:func:`epoch_draws`). Features and labels
take (1 + K) times the memory of view 0 alone; the trainer keeps features on the host (pinned) when
they do not fit on the GPU.

Crop coordinates follow SPIN's ``j2d_processing`` without its integer rounding:
``u = 2 (x - c) / (200 s)`` for centre ``c`` and scale ``s`` (the views' stored keypoints use the
same normalisation of their own augmented crop).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..body import load_body
from ..config import resolve_path
from ..errors import ConfigError, DataError, shape_str
from ..geometry import axis_angle_to_matrix
from ..spin import CROP_BOX
from .crop import SMPL_JOINTS_FLIP_PERM
from .features import FeatureStore
from .fits import fit_label_rows
from .spin_data import read_spin_npz, read_static_fits

LABEL_KEYS = ("pose", "betas", "valid", "kp3d", "has3d", "kp2d")


def crop_keypoints(kp: torch.Tensor, center: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(N, J, 3) pixel keypoints [x, y, conf] -> crop coordinates in [-1, 1] (conf kept)."""
    half = (CROP_BOX / 2 * scale)[:, None, None]
    xy = (kp[..., :2] - center[:, None, :]) / half
    return torch.cat([xy, kp[..., 2:3]], -1)


def label_tensors(labels: Any) -> dict[str, torch.Tensor]:
    """SpinLabels -> the flat float32 label tensors of the table above."""
    n = len(labels)
    rot = axis_angle_to_matrix(labels.pose.reshape(n, 24, 3).double()).float()
    kp3d = labels.keypoints3d.float()
    kp2d = torch.cat([labels.openpose.float(), labels.keypoints2d.float()], 1)
    return {
        "pose": rot.reshape(n, 216),
        "betas": labels.betas.float(),
        "valid": labels.has_smpl.float(),
        "kp3d": kp3d,
        "has3d": (kp3d[..., 3].sum(1) > 0).float(),
        "kp2d": crop_keypoints(kp2d, labels.center.float(), labels.scale.float()),
    }


def augment_rotmats(rot: torch.Tensor, flip: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """SPIN's pose augmentation on rotation matrices, batched (crop.transform_pose's convention).

    Args:
        rot: (..., 24, 3, 3) SMPL rotation matrices.
        flip: (...) bool, mirror the view.
        angle: (...) in-plane rotation in degrees (SPIN's ``rot``).

    Returns:
        (..., 24, 3, 3): the global orientation turned about the camera axis by ``-angle``
        (``R0' = Rz(-angle) R0``), then, where ``flip``, the joints swapped left <-> right and every
        rotation mirrored (``M R M``, ``M = diag(-1, 1, 1)``). A new tensor.
    """
    a = torch.deg2rad(-angle.to(rot.dtype))
    c, s = torch.cos(a), torch.sin(a)
    z, o = torch.zeros_like(a), torch.ones_like(a)
    rz = torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)
    out = torch.cat([(rz @ rot[..., 0, :, :])[..., None, :, :], rot[..., 1:, :, :]], -3)
    m = torch.tensor([-1.0, 1.0, 1.0], dtype=rot.dtype, device=rot.device)
    mirrored = out[..., SMPL_JOINTS_FLIP_PERM, :, :] * m[:, None] * m[None, :]
    return torch.where(flip[..., None, None, None].bool(), mirrored, out)


def view_label_tensors(
    base: dict[str, torch.Tensor],
    labels: Any,
    views: dict[str, np.ndarray],
    k: int,
    from_fits: bool,
) -> dict[str, torch.Tensor]:
    """Flat (n (1 + K), ...) label tensors, sample-major: view 0 from ``base``, views 1..K.

    Args:
        base: :func:`label_tensors` of the n samples (view 0).
        labels: their SpinLabels (their ``pose`` is the static fits' pose when ``from_fits``).
        views: ``FeatureStore.view_labels()``: ``pose`` (n, K, 72), ``part`` (n, K, 24, 3),
            ``openpose`` (n, K, 25, 3), ``S`` (n, K, 24, 4), ``flip``/``rot`` (n, K).
        k: the store's number of augmented views K.
        from_fits: augment the fits' poses with the views' flip/rot instead of using the stored
            (transformed ground-truth) pose.
    """
    n = len(labels)
    want = {
        "pose": (n, k, 72),
        "part": (n, k, 24, 3),
        "openpose": (n, k, 25, 3),
        "S": (n, k, 24, 4),
        "flip": (n, k),
        "rot": (n, k),
    }
    for key, shape in want.items():
        got = np.asarray(views.get(key, np.empty(0))).shape
        if got != shape:
            raise DataError(
                f"cached view labels {key!r} have shape {shape_str(got)}, expected "
                f"{shape_str(shape)}; re-extract the store with `ihmr "
                "extract-features --views`"
            )
    t = {key: torch.from_numpy(np.asarray(views[key])) for key in want}
    if from_fits:
        fit = axis_angle_to_matrix(labels.pose.reshape(n, 1, 24, 3).double())
        vrot = augment_rotmats(fit.expand(n, k, 24, 3, 3), t["flip"], t["rot"].double())
    else:
        vrot = axis_angle_to_matrix(t["pose"].reshape(n, k, 24, 3).double())
    vl = {
        "pose": vrot.float().reshape(n, k, 216),
        "kp3d": t["S"].float(),
        "kp2d": torch.cat([t["openpose"], t["part"]], 2).float(),
    }
    out = {}
    for key in LABEL_KEYS:
        b = base[key][:, None]
        v = vl[key] if key in vl else b.expand(n, k, *b.shape[2:])
        out[key] = torch.cat([b, v], 1).reshape(n * (1 + k), *b.shape[2:]).contiguous()
    return out


@dataclass
class TrainSet:
    """All training samples as tensors (host memory until :meth:`to`)."""

    features: torch.Tensor
    labels: dict[str, torch.Tensor]
    offsets: list[int]
    counts: list[int]
    mix: list[float]
    names: list[str]
    source_fingerprint: str
    views: int = 0
    row0: torch.Tensor | None = None
    """(N,) long first row of each sample (None: one row per sample)."""
    nview: torch.Tensor | None = None
    """(N,) long number of rows (1 + K) of each sample (None: all 1)."""

    def __len__(self) -> int:
        """The number of samples N (not rows)."""
        return int(self.features.shape[0] if self.row0 is None else self.row0.shape[0])

    def rows(self, idx: torch.Tensor, view: torch.Tensor | None) -> torch.Tensor:
        """Rows of (sample ``idx``, view ``view``) draws (same shape, CPU long)."""
        if self.row0 is None or view is None:
            return idx
        return self.row0[idx] + view

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[-1])

    @property
    def all_valid(self) -> bool:
        return bool((self.labels["valid"] > 0).all())

    def feature_bytes(self) -> int:
        return self.features.numel() * self.features.element_size()

    def without(self, samples: Any) -> "TrainSet":
        """The set minus the samples ``samples`` (indices over all N samples of the mix), e.g. a
        validation split held out of training; dataset offsets and counts follow."""
        drop = torch.zeros(len(self), dtype=torch.bool)
        drop[torch.as_tensor(np.asarray(samples, dtype=np.int64))] = True
        keep = torch.nonzero(~drop).squeeze(1)
        if len(keep) == 0:
            raise DataError("holding out every training sample leaves nothing to train on")
        if self.row0 is None:
            rows, nview, row0 = keep, None, None
        else:
            nview = self.nview[keep]
            rows = torch.repeat_interleave(self.row0[keep], nview) + (
                torch.arange(int(nview.sum()))
                - torch.repeat_interleave(torch.cumsum(nview, 0) - nview, nview)
            )
            row0 = torch.cumsum(nview, 0) - nview
        ends = np.cumsum(self.counts)
        counts = [
            int(((keep >= int(a)) & (keep < int(b))).sum())
            for a, b in zip(self.offsets, ends, strict=True)
        ]
        return TrainSet(
            self.features.index_select(0, rows),
            {k: v.index_select(0, rows.to(v.device)) for k, v in self.labels.items()},
            list(np.cumsum([0] + counts[:-1]).astype(int)),
            counts,
            self.mix,
            self.names,
            self.source_fingerprint,
            self.views,
            row0,
            nview,
        )

    def to(self, device: Any, features: bool = True) -> "TrainSet":
        """Move labels (and the features when ``features``) to ``device``."""
        f = self.features.to(device) if features else self.features
        return TrainSet(
            f,
            {k: v.to(device) for k, v in self.labels.items()},
            self.offsets,
            self.counts,
            self.mix,
            self.names,
            self.source_fingerprint,
            self.views,
            self.row0,
            self.nview,
        )


def load_train_set(
    datasets: Sequence[Any],
    root: str | os.PathLike = ".",
    use_views: bool = True,
    body: Any = None,
    fit_loss_threshold: float = 10.0,
    fit_betas_limit: float = 3.0,
) -> TrainSet:
    """Read and check every dataset of the mix (``DatasetConfig`` entries); their relative paths
    are read from ``root`` (``data.root``, :func:`ihmr.config.resolve_path`).

    With ``use_views`` a store's cached augmented views become extra rows (module docstring);
    without, only view 0 is read. A dataset with static fits gets its pose/betas labels by the
    IHMR release's rule (:func:`ihmr.pose.fits.fit_label_rows`): ground-truth SMPL where the
    sample has it, else the fit, valid when its 2-D fitting loss (computed per row with ``body``,
    the neutral body; loaded when None and needed) is below ``fit_loss_threshold``; a fit's betas
    are zeroed when any exceeds ``fit_betas_limit`` in magnitude.
    """
    if not datasets:
        raise ConfigError(
            "data.train is empty: give at least one dataset (labels + features), "
            "e.g. configs/ihmr/demo_mse.yaml"
        )
    feats, labs, counts, mix, names, nviews = [], [], [], [], [], []
    source = None
    for ds in datasets:
        lab_path, feat_path = resolve_path(ds.labels, root), resolve_path(ds.features, root)
        if lab_path is None or feat_path is None:
            raise ConfigError(f"dataset {ds.name!r} needs both labels and features paths")
        if not ds.weight > 0:
            raise ConfigError(f"dataset {ds.name!r}: weight must be > 0, got {ds.weight}")
        labels = read_spin_npz(lab_path)
        store = FeatureStore(feat_path)
        store.check_labels(labels)
        if source is None:
            source = store.source_fingerprint
        elif store.source_fingerprint != source:
            raise DataError(
                f"feature store {str(feat_path)!r} comes from backbone fingerprint "
                f"{store.source_fingerprint}, the other datasets from {source}; extract "
                "every dataset with the same checkpoint"
            )
        fits = resolve_path(ds.fits, root)
        fit_labels = None
        if fits is not None:
            fit_pose, fit_betas = read_static_fits(fits, n=len(labels))
            fit_labels = dataclasses.replace(labels, pose=fit_pose, betas=fit_betas)
        # rows from the label file; a fits dataset without any GT SMPL needs only the fits' rows
        want_gt = fit_labels is None or bool(labels.has_smpl.any())
        base = label_tensors(labels) if want_gt else None
        rows = None
        if use_views and store.views:
            v = 1 + store.views
            arr = np.concatenate([np.asarray(sh) for sh in store.shards()])
            feats.append(torch.from_numpy(arr.reshape(len(labels) * v, -1)))
            view_labels = store.view_labels()
            if want_gt:
                rows = view_label_tensors(base, labels, view_labels, store.views, False)
            if fit_labels is not None:
                fit_rows = view_label_tensors(
                    label_tensors(fit_labels), fit_labels, view_labels, store.views, True
                )
        else:
            v = 1
            feats.append(torch.from_numpy(np.ascontiguousarray(store.array(0))))
            rows = base
            if fit_labels is not None:
                fit_rows = label_tensors(fit_labels)
        if fit_labels is not None:
            has_gt = labels.has_smpl.bool().repeat_interleave(v)
            if body is None and not bool(has_gt.all()) and np.isfinite(fit_loss_threshold):
                body = load_body("neutral")
            rows, _ = fit_label_rows(
                rows, fit_rows, has_gt, body, fit_loss_threshold, fit_betas_limit
            )
        labs.append(rows)
        nviews.append(torch.full((len(labels),), v, dtype=torch.long))
        counts.append(len(labels))
        mix.append(float(ds.weight))
        names.append(ds.name)
    dims = {f.shape[-1] for f in feats}
    if len(dims) != 1:
        raise DataError(
            f"feature stores of one mix must share the feature size, got {sorted(dims)}"
        )
    total = float(sum(mix))
    nview = torch.cat(nviews)
    views = int(nview.max()) - 1
    row0 = (torch.cumsum(nview, 0) - nview) if views else None
    return TrainSet(
        torch.cat(feats),
        {k: torch.cat([lb[k] for lb in labs]) for k in LABEL_KEYS},
        list(np.cumsum([0] + counts[:-1]).astype(int)),
        counts,
        [m / total for m in mix],
        names,
        str(source),
        views,
        row0,
        nview if views else None,
    )


def epoch_indices(
    train: TrainSet,
    epoch: int,
    seed: int,
    batch_size: int,
    samples: int = 0,
    world_size: int = 1,
    rank: int = 0,
) -> torch.Tensor:
    """(steps, batch_size) long sample indices of one epoch for this rank (:func:`epoch_draws`)."""
    return epoch_draws(train, epoch, seed, batch_size, samples, world_size, rank)[0]


def epoch_draws(
    train: TrainSet,
    epoch: int,
    seed: int,
    batch_size: int,
    samples: int = 0,
    world_size: int = 1,
    rank: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(steps, batch_size) long sample indices and views of one epoch for this rank (CPU).

    Deterministic in ``(seed, epoch)``, so a resumed run draws what the uninterrupted run drew.
    One dataset: a random permutation. A mix: each draw picks dataset ``i`` with probability
    ``mix[i]`` and a uniform sample inside it (SPIN's MixedDataset draws the dataset the same way).
    The last partial batch is dropped (fixed shapes); every rank gets its own rows.
    With cached views (``train.nview``), each draw then picks a view uniformly in 0..K of its
    sample from the same generator (the indices are those drawn without views); else None.
    """
    g = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
    n = len(train)
    want = int(samples) if samples else n
    steps = want // (batch_size * world_size)
    if steps < 1:
        raise ConfigError(
            f"{want} samples per epoch give no full batch of {batch_size} x "
            f"{world_size} process(es); lower optim.batch_size"
        )
    take = steps * batch_size * world_size
    if len(train.counts) == 1:
        reps = -(-take // n)
        idx = torch.cat([torch.randperm(n, generator=g) for _ in range(reps)])[:take]
    else:
        which = torch.multinomial(
            torch.tensor(train.mix, dtype=torch.float64), take, replacement=True, generator=g
        )
        u = torch.rand(take, generator=g, dtype=torch.float64)
        counts = torch.tensor(train.counts, dtype=torch.float64)
        local = (u * counts[which]).long().clamp_max(counts[which].long() - 1)
        idx = torch.tensor(train.offsets, dtype=torch.long)[which] + local
    view = None
    if train.nview is not None:
        nv = train.nview[idx]
        u = torch.rand(take, generator=g, dtype=torch.float64)
        view = torch.minimum((u * nv).long(), nv - 1)
        view = view.view(steps, world_size, batch_size)[:, rank].contiguous()
    return idx.view(steps, world_size, batch_size)[:, rank].contiguous(), view
