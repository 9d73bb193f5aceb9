"""A balanced validation split of held-out training samples, and its score.

The split holds out a share of every label bin of the *training* set (stratified, seeded), so the
rare bins are represented, and the score is the balanced metric of
:mod:`ihmr.metrics.regression` on those samples: every bin weighs the same, as in the balanced test
protocols (paper Sec. 4.2.2). The test set is never touched. A bin with a single training sample
stays in training (holding it out would remove the label from training altogether).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DataError, ShapeError, shape_str


def holdout_split(
    bin_ids: Any, fraction: float = 0.1, seed: int = 0, min_bins: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out: ``(train_idx, val_idx)`` sorted int64 arrays over ``len(bin_ids)``.

    From every bin with ``n >= 2`` training samples, ``max(1, round(fraction * n))`` samples (at
    most ``n - 1``) go to validation, drawn with ``numpy.random.default_rng(seed)``.

    Raises:
        DataError: when the validation samples cover fewer than ``min_bins`` label bins (a
            balanced score needs at least two bins to balance).
    """
    b = np.asarray(bin_ids)
    if b.ndim != 1 or not np.issubdtype(b.dtype, np.integer):
        raise ShapeError(
            f"bin_ids must be a (N,) integer array, got {shape_str(b.shape)} {b.dtype}"
        )
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the validation fraction must lie in (0, 1), got {fraction:g}")
    rng = np.random.default_rng(seed)
    val = []
    for k in np.unique(b):
        members = np.flatnonzero(b == k)
        if len(members) < 2:
            continue
        take = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        val.append(rng.choice(members, size=take, replace=False))
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    n_bins = len(np.unique(b[val_idx]))
    if n_bins < min_bins:
        raise DataError(
            f"the validation split covers {n_bins} non-empty label bin(s); a balanced "
            f"validation score needs at least {min_bins}: use finer label bins or a "
            "training set whose labels span more than one bin"
        )
    train_idx = np.setdiff1d(np.arange(len(b)), val_idx)
    return train_idx.astype(np.int64), val_idx.astype(np.int64)


def validation_score(result: dict[str, Any], key: str = "bmae", min_bins: int = 2) -> float:
    """The balanced ``key`` of a :class:`~ihmr.metrics.regression.BalancedRegressionMetric`
    result, refused when the validation samples fell in fewer than ``min_bins`` bins."""
    if result.get("bins", 0) < min_bins:
        raise DataError(
            f"the validation set covers {result.get('bins', 0)} non-empty label "
            f"bin(s); a balanced score needs at least {min_bins}: hold out more "
            "samples or use finer bins"
        )
    value = result.get(key)
    if value is None or not math.isfinite(value):
        raise DataError(
            f"validation {key} is {value}; the validation set is empty or a "
            "prediction is not finite"
        )
    return float(value)
