"""Balanced MAE / MSE / RMSE for any regression loop: ``update(pred, target)``, ``compute()``.

The metric is the paper's balanced evaluation (Sec. 4.2.2) for 1-D or d-dimensional targets:

- every target falls in a *label bin*: given by ``edges`` (a 1-D target, or the distance
  ``|y - center|_2`` of a d-dim target to ``center``, like the IHMR regions of the distance to the
  mean mesh), by ``n_bins`` equal bins over ``range``, or by a protocol's own ``binner``;
- per-sample errors are ``abs = mean_j |p_j - y_j|`` and ``sq = mean_j (p_j - y_j)^2`` over the
  d target dimensions (the element mean, as ``nn.MSELoss``);
- ``bMAE`` / ``bMSE`` = mean over the non-empty bins of the per-bin mean error, ``bRMSE =
  sqrt(bMSE)``; ``MAE`` / ``MSE`` / ``RMSE`` are the ordinary sample means beside them;
- shots (DIR, Yang et al. 2021): a bin is many-shot with more than ``many`` (100) training samples,
  few-shot with fewer than ``few`` (20), medium otherwise; each shot gets the same six numbers over
  its bins;
- tails: ``tail{k}`` = plain means over the ``int(N k / 100)`` samples farthest from ``center``
  (the IHMR bMPVPE tail 10% / 5%; for a 1-D target the centre defaults to the mean training label).

All of it is computed by :class:`~ihmr.metrics.balanced.BinnedMean` from per-bin sums and counts:
the same definition of "balanced" as the pose, age and depth reports. The state is those sums and
counts (plus, only when tails are asked for, each sample's distance and errors), so batches in any
order, any number of workers or DDP ranks give the one-process result: with torchmetrics installed
:class:`BalancedRegressionMetric` is a real ``torchmetrics.Metric`` (its ``sum`` / ``cat`` state
reductions); without, the same class syncs by hand with ``torch.distributed`` in :meth:`compute`.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ConfigError, DataError, ShapeError, shape_str
from .balanced import SHOTS, BinnedMean, bins_of_shot, shot_of_bins

__all__ = [  # noqa: F822 - BalancedRegressionMetric is built on first access (__getattr__)
    "BalancedRegressionMetric",
    "PlainBalancedRegressionMetric",
    "LabelBins",
    "balanced_regression",
    "tail_indices",
    "has_torchmetrics",
]


def tail_indices(score: np.ndarray, percent: float) -> np.ndarray:
    """Indices of the ``int(N percent / 100)`` largest ``score`` (N,) (stable: ties by position)."""
    score = np.asarray(score, dtype=np.float64)
    return np.argsort(-score, kind="stable")[: int(len(score) * percent / 100)]


class LabelBins:
    """Maps targets (N,) or (N, d) to bin ids (N,) and the distance used for tails.

    Args:
        edges: (B + 1,) increasing bin edges; bin ``i`` is ``[e_i, e_{i+1})``, the last one closed;
            values outside ``[e_0, e_B]`` go to the first / last bin (as the DIR and IHMR code).
        n_bins, range: ``n_bins`` equal bins over ``range = (low, high)`` instead of ``edges``.
        center: (d,) reference label; the binned value is then ``|y - center|_2`` (required for
            d > 1 targets; for 1-D targets without it the label itself is binned).
        binner: a protocol's own rule ``values (N,) -> bin ids (N,) int`` in ``[0, n_bins)``
            (e.g. ``floor(age)``, :func:`ihmr.pose.split.assign_regions`), with ``n_bins``.
    """

    def __init__(
        self,
        edges: Sequence[float] | None = None,
        *,
        n_bins: int | None = None,
        range: tuple[float, float] | None = None,
        center: Any = None,
        binner: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.binner = binner
        if binner is not None:
            if edges is not None or range is not None or not n_bins or n_bins < 1:
                raise ConfigError("binner= needs n_bins >= 1 and no edges or range")
            self.edges = None
            self.n_bins = int(n_bins)
        else:
            if edges is None:
                if n_bins is None or range is None:
                    raise ConfigError(
                        "give label bins as edges=, as n_bins= with range=(low, "
                        "high), or as binner= with n_bins="
                    )
                lo, hi = float(range[0]), float(range[1])
                if not (n_bins >= 1 and hi > lo and math.isfinite(lo) and math.isfinite(hi)):
                    raise ConfigError(
                        f"n_bins must be >= 1 and range a finite (low, high) with "
                        f"high > low, got {n_bins} and {range}"
                    )
                edges = np.linspace(lo, hi, int(n_bins) + 1)
            e = np.asarray(edges, dtype=np.float64)
            if e.ndim != 1 or len(e) < 2 or not np.isfinite(e).all() or (np.diff(e) <= 0).any():
                raise ConfigError(
                    f"edges must be a finite, strictly increasing (B + 1,) array "
                    f"with B >= 1, got shape {shape_str(e.shape)}"
                )
            self.edges, self.n_bins = e, len(e) - 1
        self.center = None if center is None else np.asarray(center, dtype=np.float64).reshape(-1)

    def value(self, target: np.ndarray) -> np.ndarray:
        """(N,) binned value: the label (1-D, no centre) or the distance to ``center``."""
        y = target.reshape(len(target), -1)
        if self.center is None:
            if y.shape[1] != 1:
                raise ShapeError(
                    f"targets of dimension {y.shape[1]} need center= (bins are "
                    "regions of the distance to it); got no center"
                )
            return y[:, 0]
        if self.center.size != y.shape[1]:
            raise ShapeError(
                f"center has {self.center.size} entries but targets have dimension {y.shape[1]}"
            )
        return np.sqrt(((y - self.center) ** 2).sum(axis=1))

    def ids(self, value: np.ndarray) -> np.ndarray:
        """(N,) int64 bin ids of binned values (N,)."""
        if self.binner is not None:
            b = np.asarray(self.binner(value)).astype(np.int64)
            if b.shape != value.shape or (b.size and (b.min() < 0 or b.max() >= self.n_bins)):
                raise DataError(f"binner must return (N,) ids in [0, {self.n_bins})")
            return b
        b = np.searchsorted(self.edges, value, side="right") - 1
        return np.clip(b, 0, self.n_bins - 1).astype(np.int64)

    def tail_score(self, target: np.ndarray, fallback_center: np.ndarray | None) -> np.ndarray:
        """(N,) distance of each target to the centre (given, else the training-label mean)."""
        c = self.center if self.center is not None else fallback_center
        if c is None:
            raise ConfigError(
                "tails need center= or train_targets= (the tail is the share of "
                "samples farthest from the centre)"
            )
        y = target.reshape(len(target), -1)
        return np.sqrt(((y - c.reshape(1, -1)) ** 2).sum(axis=1))


def _np64(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (1, 2):
        raise ShapeError(f"{name} must have shape (N,) or (N, d), got {shape_str(a.shape)}")
    return a


class _BalancedCore:
    """The maths of :class:`BalancedRegressionMetric`, shared by both of its bases."""

    def _setup(
        self,
        bins: LabelBins | Sequence[float] | None,
        n_bins,
        range,
        center,
        binner,
        train_targets,
        train_counts,
        many: int,
        few: int,
        tails: Sequence[float],
    ) -> None:
        self.bins = (
            bins
            if isinstance(bins, LabelBins)
            else LabelBins(bins, n_bins=n_bins, range=range, center=center, binner=binner)
        )
        self.tails = tuple(float(k) for k in tails)
        if any(not 0 < k <= 100 for k in self.tails):
            raise ConfigError(f"tails are percentages in (0, 100], got {self.tails}")
        self.train_center = None
        if train_targets is not None:
            t = _np64(train_targets, "train_targets")
            if not np.isfinite(t).all():
                raise DataError("train_targets hold NaN or inf; remove those samples")
            train_counts = np.bincount(
                self.bins.ids(self.bins.value(t)), minlength=self.bins.n_bins
            )
            self.train_center = t.reshape(len(t), -1).mean(axis=0)
        self.train_counts = (
            None if train_counts is None else np.asarray(train_counts, dtype=np.int64)
        )
        if self.train_counts is not None and self.train_counts.shape != (self.bins.n_bins,):
            raise ShapeError(
                f"train_counts must have shape ({self.bins.n_bins},), got "
                f"{shape_str(self.train_counts.shape)}"
            )
        self.shots = (
            None if self.train_counts is None else shot_of_bins(self.train_counts, many, few)
        )
        if self.tails:
            self.bins.tail_score(
                np.zeros((1, 1 if self.bins.center is None else self.bins.center.size)),
                self.train_center,
            )

    def bin_ids(self, target: Any) -> np.ndarray:
        """(N,) int64 label bin of each target (N,) or (N, d), e.g. for
        :func:`ihmr.sigma.holdout_split`."""
        y = _np64(target, "target")
        if not np.isfinite(y).all():
            raise DataError("target holds NaN or inf; a sample without a label has no bin")
        return self.bins.ids(self.bins.value(y))

    def _batch(self, pred: Any, target: Any):
        """Per-sample (abs, sq) errors (n, 2), bin ids (n,), tail scores (n,) of one batch."""
        p, y = _np64(pred, "pred"), _np64(target, "target")
        if p.shape != y.shape:
            raise ShapeError(
                f"pred and target must have the same shape (N,) or (N, d), got "
                f"{shape_str(p.shape)} and {shape_str(y.shape)}"
            )
        if not np.isfinite(y).all():
            raise DataError(
                f"target holds {int((~np.isfinite(y)).sum())} NaN or inf value(s); a "
                "sample without a label has no bin: drop it before update()"
            )
        if not np.isfinite(p).all():
            raise DataError(f"pred holds {int((~np.isfinite(p)).sum())} NaN or inf value(s)")
        e = (p - y).reshape(len(p), -1)
        err = np.stack([np.abs(e).mean(axis=1), (e**2).mean(axis=1)], axis=1)
        ids = self.bins.ids(self.bins.value(y))
        score = self.bins.tail_score(y, self.train_center) if self.tails else None
        return err, ids, score

    def _result(
        self,
        sums: np.ndarray,
        counts: np.ndarray,
        score: np.ndarray | None,
        errors: np.ndarray | None,
    ) -> dict[str, Any]:
        acc = BinnedMean.from_state(sums, counts)
        out: dict[str, Any] = {
            "n": int(counts.sum()),
            "bins": int((counts > 0).sum()),
            **_six(acc, None),
        }
        if self.shots is not None:
            for shot in SHOTS:
                idx = bins_of_shot(self.shots, shot)
                out[shot] = {"n": int(counts[idx].sum()), **_six(acc, idx)}
        if self.tails and score is not None:
            # canonical order first, so the gathered order of ranks cannot change a tie
            order = np.lexsort((errors[:, 1], errors[:, 0], score))
            score, errors = score[order], errors[order]
            for k in self.tails:
                take = tail_indices(score, k)
                sel = errors[take]
                key = f"tail{k:g}"
                out[key] = (
                    {
                        "n": len(take),
                        "mae": float(sel[:, 0].mean()),
                        "mse": float(sel[:, 1].mean()),
                        "rmse": math.sqrt(sel[:, 1].mean()),
                    }
                    if len(take)
                    else {"n": 0, "mae": None, "mse": None, "rmse": None}
                )
        return out


def _six(acc: BinnedMean, idx) -> dict[str, float | None]:
    bal, ovr = acc.balanced(idx), acc.overall(idx)
    if bal is None:
        return {k: None for k in ("bmae", "bmse", "brmse", "mae", "mse", "rmse")}
    return {
        "bmae": float(bal[0]),
        "bmse": float(bal[1]),
        "brmse": math.sqrt(bal[1]),
        "mae": float(ovr[0]),
        "mse": float(ovr[1]),
        "rmse": math.sqrt(ovr[1]),
    }


_DOC_ARGS = """
    Args:
        bins: a :class:`LabelBins`, or the bin ``edges`` (B + 1,) (see :class:`LabelBins`).
        n_bins, range, center, binner: the other ways to give the bins (:class:`LabelBins`).
        train_targets: (N_train,) or (N_train, d) training labels: their histogram over the bins
            gives the shots, their mean the tails' centre when ``center`` is not given.
        train_counts: (B,) training count per bin instead of ``train_targets``.
        many, few: shot thresholds on the training count (DIR: 100, 20).
        tails: tail percentages (default none; IHMR reports 10 and 5).

    ``compute()`` returns ``{"n", "bins", "bmae", "bmse", "brmse", "mae", "mse", "rmse"}`` plus,
    with training counts, ``"many" / "medium" / "few"`` blocks and, with tails, ``"tail10"`` etc.
    Values are ``None`` where no sample falls.
"""


class PlainBalancedRegressionMetric(_BalancedCore):
    (
        """Balanced regression metric without torchmetrics: same interface and results.

    Under ``torch.distributed`` (initialised, world size > 1) :meth:`compute` sums the sums and
    counts of all ranks (and gathers the tail samples) before computing; the local state is kept.
    """
        + _DOC_ARGS
    )

    def __init__(
        self,
        bins=None,
        *,
        n_bins=None,
        range=None,
        center=None,
        binner=None,
        train_targets=None,
        train_counts=None,
        many: int = 100,
        few: int = 20,
        tails: Sequence[float] = (),
    ) -> None:
        self._setup(
            bins, n_bins, range, center, binner, train_targets, train_counts, many, few, tails
        )
        self.reset()

    def reset(self) -> None:
        """Forget every sample seen."""
        self.sums = np.zeros((self.bins.n_bins, 2))
        self.counts = np.zeros(self.bins.n_bins, dtype=np.int64)
        self.scores: list[np.ndarray] = []
        self.errors: list[np.ndarray] = []

    def update(self, pred: Any, target: Any) -> None:
        """Add a batch: ``pred``, ``target`` (N,) or (N, d), tensors or arrays."""
        err, ids, score = self._batch(pred, target)
        np.add.at(self.sums, ids, err)
        self.counts += np.bincount(ids, minlength=self.bins.n_bins)
        if self.tails:
            self.scores.append(score)
            self.errors.append(err)

    def compute(self) -> dict[str, Any]:
        """The metrics of every sample seen (on all ranks under ``torch.distributed``)."""
        sums, counts = self.sums.copy(), self.counts.copy()
        score = np.concatenate(self.scores) if self.scores else np.zeros(0)
        errors = np.concatenate(self.errors) if self.errors else np.zeros((0, 2))

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            state = torch.from_numpy(np.concatenate([sums.ravel(), counts.astype(np.float64)]))
            dist.all_reduce(state)  # counts are exact in float64 up to 2**53
            s = state.numpy()
            sums = s[: sums.size].reshape(sums.shape)
            counts = np.rint(s[sums.size :]).astype(np.int64)
            if self.tails:
                parts: list = [None] * dist.get_world_size()
                dist.all_gather_object(parts, (score, errors))
                score = np.concatenate([p[0] for p in parts])
                errors = np.concatenate([p[1] for p in parts])
        return self._result(sums, counts, score if self.tails else None, errors)


def has_torchmetrics() -> bool:
    """Whether torchmetrics (the optional extra ``ihmr[metrics]``) is importable."""
    return importlib.util.find_spec("torchmetrics") is not None


def _torchmetrics_class() -> type:
    from torchmetrics import Metric

    class BalancedRegressionMetric(_BalancedCore, Metric):
        __doc__ = (
            "Balanced regression metric as a ``torchmetrics.Metric`` (sum / cat state "
            "reductions under DDP)." + _DOC_ARGS
        )
        full_state_update = False
        is_differentiable = False
        higher_is_better = False

        def __init__(
            self,
            bins=None,
            *,
            n_bins=None,
            range=None,
            center=None,
            binner=None,
            train_targets=None,
            train_counts=None,
            many: int = 100,
            few: int = 20,
            tails: Sequence[float] = (),
            **kwargs: Any,
        ) -> None:
            Metric.__init__(self, **kwargs)
            self._setup(
                bins, n_bins, range, center, binner, train_targets, train_counts, many, few, tails
            )
            b = self.bins.n_bins
            self.add_state("sums", torch.zeros(b, 2, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("counts", torch.zeros(b, dtype=torch.int64), dist_reduce_fx="sum")
            if self.tails:
                self.add_state("scores", [], dist_reduce_fx="cat")
                self.add_state("errors", [], dist_reduce_fx="cat")

        def update(self, pred: Any, target: Any) -> None:
            err, ids, score = self._batch(pred, target)
            dev = self.sums.device
            idx = torch.from_numpy(ids).to(dev)
            self.sums.index_add_(0, idx, torch.from_numpy(err).to(dev, self.sums.dtype))
            self.counts += torch.bincount(idx, minlength=self.bins.n_bins).to(self.counts.dtype)
            if self.tails:
                self.scores.append(torch.from_numpy(score).to(dev))
                self.errors.append(torch.from_numpy(err).to(dev))

        def compute(self) -> dict[str, Any]:
            score = errors = None
            if self.tails:

                def cat(v, shape):
                    if isinstance(v, list) and v:
                        return torch.cat(v)
                    return v if torch.is_tensor(v) else torch.zeros(shape)

                score = cat(self.scores, (0,)).double().cpu().numpy()
                errors = cat(self.errors, (0, 2)).double().cpu().numpy().reshape(-1, 2)
            return self._result(
                self.sums.double().cpu().numpy(), self.counts.cpu().numpy(), score, errors
            )

    return BalancedRegressionMetric


_CLASS: type | None = None


def __getattr__(name: str) -> Any:
    # Built on first use so that importing ihmr.metrics never imports torchmetrics.
    global _CLASS
    if name == "BalancedRegressionMetric":
        if _CLASS is None:
            _CLASS = _torchmetrics_class() if has_torchmetrics() else PlainBalancedRegressionMetric
        return _CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def balanced_regression(pred: Any, target: Any, **kwargs: Any) -> dict[str, Any]:
    """Functional form: one :class:`PlainBalancedRegressionMetric` update and compute."""
    m = PlainBalancedRegressionMetric(**kwargs)
    m.update(pred, target)
    return m.compute()
