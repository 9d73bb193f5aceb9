"""Balanced aggregation of per-sample errors over label bins (regions, integer ages, depth bins).

A *balanced* metric gives every label bin the same weight: the per-sample error is averaged within
each bin, then the per-bin means are averaged over the non-empty bins (paper Sec. 4.2.2; the IHMR
bMPVPE/bMPJPE, the age bMAE/bMSE and the depth per-bin variants are all this). The ordinary,
sample-weighted mean is available beside it. Shot metrics restrict either mean to a subset of bins.

:class:`BinnedMean` only accumulates sums and counts, so feeding a test set in any number of
batches gives exactly the result of one call on the whole set (the torchmetrics pattern).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..errors import ShapeError, check_finite

SHOTS = ("many", "medium", "few")


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class BinnedMean:
    """Streaming per-bin sums and counts of ``n_metrics`` per-sample errors.

    Args:
        n_bins: number of label bins; bin ids are integers in ``[0, n_bins)``.
        n_metrics: number of error columns updated together (e.g. MPVPE, MPJPE, PA-MPJPE).
    """

    def __init__(self, n_bins: int, n_metrics: int = 1) -> None:
        if n_bins < 1 or n_metrics < 1:
            raise ValueError(f"n_bins and n_metrics must be >= 1, got {n_bins} and {n_metrics}")
        self.n_bins = int(n_bins)
        self.n_metrics = int(n_metrics)
        self.sums = np.zeros((self.n_bins, self.n_metrics), dtype=np.float64)
        self.counts = np.zeros(self.n_bins, dtype=np.int64)

    @classmethod
    def from_state(cls, sums, counts) -> "BinnedMean":
        """An accumulator holding given per-bin ``sums`` (n_bins, n_metrics) and ``counts``
        (n_bins,) (e.g. reduced across DDP ranks)."""
        sums = np.asarray(_as_numpy(sums), dtype=np.float64)
        counts = np.asarray(_as_numpy(counts), dtype=np.int64)
        if sums.ndim != 2 or counts.shape != (sums.shape[0],):
            raise ShapeError(
                f"sums must be (n_bins, n_metrics) and counts (n_bins,), got "
                f"{sums.shape} and {counts.shape}"
            )
        acc = cls(sums.shape[0], sums.shape[1])
        acc.sums[:] = sums
        acc.counts[:] = counts
        return acc

    def update(self, values, bins) -> None:
        """Add per-sample ``values`` (N,) or (N, n_metrics) falling in integer ``bins`` (N,)."""
        values = _as_numpy(values).astype(np.float64, copy=False)
        bins = _as_numpy(bins)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[1] != self.n_metrics:
            raise ShapeError(
                f"values must have shape (N,) or (N, {self.n_metrics}), got {values.shape}"
            )
        if bins.shape != (values.shape[0],):
            raise ShapeError(f"bins must have shape ({values.shape[0]},), got {bins.shape}")
        if bins.size and not np.issubdtype(bins.dtype, np.integer):
            raise ShapeError(f"bins must hold integer bin ids, got dtype {bins.dtype}")
        if bins.size and (bins.min() < 0 or bins.max() >= self.n_bins):
            raise ValueError(
                f"bin ids must lie in [0, {self.n_bins}), got range [{bins.min()}, {bins.max()}]"
            )
        check_finite(values, "values")
        np.add.at(self.sums, bins, values)
        self.counts += np.bincount(bins, minlength=self.n_bins)

    def merge(self, other: "BinnedMean") -> "BinnedMean":
        """Add another accumulator's state (e.g. from another rank or worker) to this one."""
        if (other.n_bins, other.n_metrics) != (self.n_bins, self.n_metrics):
            raise ShapeError("cannot merge accumulators with different n_bins or n_metrics")
        self.sums += other.sums
        self.counts += other.counts
        return self

    def per_bin(self) -> np.ndarray:
        """(n_bins, n_metrics) per-bin means, NaN for empty bins."""
        out = np.full_like(self.sums, np.nan)
        nz = self.counts > 0
        out[nz] = self.sums[nz] / self.counts[nz, None]
        return out

    def _select(self, bins: Iterable[int] | None) -> np.ndarray:
        if bins is None:
            return np.arange(self.n_bins)
        idx = np.asarray(list(bins), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_bins):
            raise ValueError(f"bin ids must lie in [0, {self.n_bins})")
        return idx

    def balanced(self, bins: Iterable[int] | None = None) -> np.ndarray | None:
        """(n_metrics,) mean of per-bin means of the non-empty bins among ``bins``; None if none."""
        idx = self._select(bins)
        idx = idx[self.counts[idx] > 0]
        if idx.size == 0:
            return None
        return (self.sums[idx] / self.counts[idx, None]).mean(axis=0)

    def overall(self, bins: Iterable[int] | None = None) -> np.ndarray | None:
        """(n_metrics,) sample-weighted mean of the samples in ``bins``; None if there are none."""
        idx = self._select(bins)
        n = self.counts[idx].sum()
        if n == 0:
            return None
        return self.sums[idx].sum(axis=0) / n


def shot_of_bins(train_counts: Sequence[int], many: int = 100, few: int = 20) -> np.ndarray:
    """Shot of every bin from its training count: ``many`` if > many, ``few`` if < few, else medium.

    The DIR convention (Yang et al. 2021): many-shot > 100, few-shot < 20 training samples.
    """
    counts = _as_numpy(train_counts)
    if counts.ndim != 1:
        raise ShapeError(f"train_counts must be 1-D, got shape {counts.shape}")
    if few > many:
        raise ValueError(f"few ({few}) must not exceed many ({many})")
    out = np.full(counts.shape, "medium", dtype=object)
    out[counts > many] = "many"
    out[counts < few] = "few"
    return out.astype(str)


def bins_of_shot(shots: np.ndarray, shot: str) -> np.ndarray:
    """Bin ids whose shot label equals ``shot`` (one of many / medium / few)."""
    if shot not in SHOTS:
        raise ValueError(f"shot must be one of {SHOTS}, got {shot!r}")
    return np.flatnonzero(np.asarray(shots) == shot)
