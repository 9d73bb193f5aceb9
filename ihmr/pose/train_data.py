"""Training data of ``ihmr train``: labels and cached features as device tensors, and the sampler.

Every training dataset (SPIN labels + optional static fits + its feature store) is checked
(labels fingerprint of each store, one backbone for all stores) and turned into flat tensors:

========== ============== ===========================================================
key        shape          meaning
========== ============== ===========================================================
features   (N, D) f16     view-0 features
pose       (N, 216)       flattened GT rotation matrices (static fits when given)
betas      (N, 10)        GT betas
valid      (N,)           1.0 where pose/betas are valid
kp3d       (N, 24, 4)     3-D joints [x, y, z, conf] (m)
has3d      (N,)           1.0 where the sample has 3-D joints
kp2d       (N, 49, 3)     25 OpenPose + 24 GT 2-D joints in crop coordinates [-1, 1] + conf
========== ============== ===========================================================

Crop coordinates follow SPIN's ``j2d_processing`` without its integer rounding:
``u = 2 (x - c) / (200 s)`` for centre ``c`` and scale ``s``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ConfigError, DataError

LABEL_KEYS = ("pose", "betas", "valid", "kp3d", "has3d", "kp2d")


def crop_keypoints(kp: torch.Tensor, center: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(N, J, 3) pixel keypoints [x, y, conf] -> crop coordinates in [-1, 1] (conf kept)."""
    half = (100.0 * scale)[:, None, None]
    xy = (kp[..., :2] - center[:, None, :]) / half
    return torch.cat([xy, kp[..., 2:3]], -1)


def label_tensors(labels: Any) -> dict[str, torch.Tensor]:
    """SpinLabels -> the flat float32 label tensors of the table above."""
    from ..geometry import axis_angle_to_matrix

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


def _resolve(root: str | os.PathLike, path: str | None) -> Path | None:
    if not path:
        return None
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p


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

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[-1])

    @property
    def all_valid(self) -> bool:
        return bool((self.labels["valid"] > 0).all())

    def feature_bytes(self) -> int:
        return self.features.numel() * self.features.element_size()

    def to(self, device: Any, features: bool = True) -> "TrainSet":
        """Move labels (and the features when ``features``) to ``device``."""
        f = self.features.to(device) if features else self.features
        return TrainSet(f, {k: v.to(device) for k, v in self.labels.items()}, self.offsets,
                        self.counts, self.mix, self.names, self.source_fingerprint, self.views)


def load_train_set(datasets: Sequence[Any], root: str | os.PathLike = ".",
                   use_views: bool = True) -> TrainSet:
    """Read and check every dataset of the mix (``DatasetConfig`` entries)."""
    from .features import FeatureStore
    from .spin_data import read_spin_npz, with_static_fits

    if not datasets:
        raise ConfigError("data.train is empty: give at least one dataset (labels + features), "
                          "e.g. configs/ihmr/demo_mse.yaml")
    feats, labs, counts, mix, names = [], [], [], [], []
    source = None
    for ds in datasets:
        lab_path, feat_path = _resolve(root, ds.labels), _resolve(root, ds.features)
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
            raise DataError(f"feature store {str(feat_path)!r} comes from backbone fingerprint "
                            f"{store.source_fingerprint}, the other datasets from {source}; extract "
                            "every dataset with the same checkpoint")
        fits = _resolve(root, ds.fits)
        if fits is not None:
            labels = with_static_fits(labels, fits)
        if use_views and store.views:
            # The transformed labels of the cached views are not read yet (their layout belongs to
            # `ihmr extract-features --views`): train on the un-augmented view and say so.
            warnings.warn(f"{str(feat_path)!r} holds {store.views} cached augmented views; this "
                          "version trains on view 0 only (set data.views=false to silence)",
                          stacklevel=2)
        feats.append(torch.from_numpy(np.ascontiguousarray(store.array(0))))
        labs.append(label_tensors(labels))
        counts.append(len(labels))
        mix.append(float(ds.weight))
        names.append(ds.name)
    dims = {f.shape[-1] for f in feats}
    if len(dims) != 1:
        raise DataError(f"feature stores of one mix must share the feature size, got {sorted(dims)}")
    total = float(sum(mix))
    return TrainSet(torch.cat(feats), {k: torch.cat([lb[k] for lb in labs]) for k in LABEL_KEYS},
                    list(np.cumsum([0] + counts[:-1]).astype(int)), counts,
                    [m / total for m in mix], names, str(source), 0)


def epoch_indices(train: TrainSet, epoch: int, seed: int, batch_size: int, samples: int = 0,
                  world_size: int = 1, rank: int = 0) -> torch.Tensor:
    """(steps, batch_size) long indices of one epoch for this rank (CPU).

    Deterministic in ``(seed, epoch)``, so a resumed run draws what the uninterrupted run drew.
    One dataset: a random permutation. A mix: each draw picks dataset ``i`` with probability
    ``mix[i]`` and a uniform sample inside it (SPIN's MixedDataset draws the dataset the same way).
    The last partial batch is dropped (fixed shapes); every rank gets its own rows.
    """
    g = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
    n = len(train)
    want = int(samples) if samples else n
    steps = want // (batch_size * world_size)
    if steps < 1:
        raise ConfigError(f"{want} samples per epoch give no full batch of {batch_size} x "
                          f"{world_size} process(es); lower optim.batch_size")
    take = steps * batch_size * world_size
    if len(train.counts) == 1:
        reps = -(-take // n)
        idx = torch.cat([torch.randperm(n, generator=g) for _ in range(reps)])[:take]
    else:
        which = torch.multinomial(torch.tensor(train.mix, dtype=torch.float64), take,
                                  replacement=True, generator=g)
        u = torch.rand(take, generator=g, dtype=torch.float64)
        counts = torch.tensor(train.counts, dtype=torch.float64)
        local = (u * counts[which]).long().clamp_max(counts[which].long() - 1)
        idx = torch.tensor(train.offsets, dtype=torch.long)[which] + local
    return idx.view(steps, world_size, batch_size)[:, rank].contiguous()
