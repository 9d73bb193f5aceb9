"""DIR age metrics: MSE, L1 (MAE), G-mean and the balanced bMAE / bMSE, overall and per shot.

Conventions (DIR, Yang et al. 2021; Balanced MSE, Ren et al. 2022, Sec. 4.2.2):

- A sample's label bin is its integer age ``floor(age)`` (the real labels are integers).
- Shots come from the *training* count of the bin: many > 100, few < 20, medium otherwise; a test
  age absent from training has count 0 and is few-shot.
- MSE, L1 and G-mean are sample-weighted within the selection (all test samples, or those of one
  shot). G-mean is ``exp(mean(log |e|))`` with ``|e|`` floored at 1e-12 so that an exact hit gives a
  tiny instead of a -inf logarithm (the DIR code's ``scipy.stats.gmean`` returns 0 then).
- bMAE / bMSE are the mean over the non-empty bins of the per-bin mean error (overall: every test
  bin; per shot: the test bins of that shot).
- A selection without test samples (e.g. no few-shot ages) is reported as ``None`` for every
  metric with ``count = 0``: never a crash or a NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ShapeError, check_finite
from ..metrics.balanced import SHOTS, BinnedMean, bins_of_shot, shot_of_bins

METRICS = ("mse", "l1", "gmean", "bmse", "bmae")
_FLOOR = 1e-12


def age_bins(ages: Any, n_bins: int | None = None) -> np.ndarray:
    """Integer age bins ``floor(age)`` (N,) int64; ages must be finite and >= 0."""
    a = np.asarray(ages, dtype=np.float64).reshape(-1)
    check_finite(a, "ages")
    if a.size and a.min() < 0:
        raise DataError(f"ages must be >= 0, got minimum {a.min():g}")
    b = np.floor(a).astype(np.int64)
    if n_bins is not None and b.size and b.max() >= n_bins:
        raise DataError(f"ages must be < {n_bins}, got maximum {a.max():g}")
    return b


def per_sample_errors(pred: Any, target: Any) -> dict[str, np.ndarray]:
    """Per-sample ``abs`` = |p - y| and ``sq`` = (p - y)^2, both (N,) float64.

    Args:
        pred, target: (N,) or (N, 1) predicted and true ages (years).
    """
    p = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred, dtype=np.float64)
    y = np.asarray(target.detach().cpu() if hasattr(target, "detach") else target, dtype=np.float64)
    p, y = p.reshape(len(p), -1), y.reshape(len(y), -1)
    if p.shape != y.shape or p.shape[1] != 1:
        raise ShapeError(
            f"pred and target must both have shape (N,) or (N, 1), got {p.shape} and {y.shape}"
        )
    check_finite(p, "pred")
    e = (p - y)[:, 0]
    return {"abs": np.abs(e), "sq": e**2}


class AgeMetrics:
    """Streaming DIR age metrics: ``update`` with batches, ``compute`` once.

    Args:
        train_labels: (N_train,) training ages; they define the shot of every integer age.
        n_bins: number of integer-age bins (ages 0 .. n_bins-1); default covers the training and
            test ages 0 .. 200 (IMDB-WIKI-DIR keeps training ages up to 200).
        many, few: shot thresholds on the training count per age (DIR: 100, 20).
    """

    def __init__(
        self, train_labels: Any, n_bins: int = 201, many: int = 100, few: int = 20
    ) -> None:
        if few > many:
            raise ConfigError(
                f"few ({few}) must not exceed many ({many}): a few-shot age has fewer "
                "than `few` training images, a many-shot one more than `many`"
            )
        self.n_bins = n_bins
        self.train_counts = np.bincount(age_bins(train_labels, n_bins), minlength=n_bins)
        self.shots = shot_of_bins(self.train_counts, many, few)
        # columns: |e|, e^2, log(max(|e|, floor))
        self.acc = BinnedMean(n_bins, 3)

    def update(self, pred: Any, target: Any) -> None:
        err = per_sample_errors(pred, target)
        cols = np.stack([err["abs"], err["sq"], np.log(np.maximum(err["abs"], _FLOOR))], axis=1)
        self.acc.update(cols, age_bins(target, self.n_bins))

    def _block(self, bins: np.ndarray | None) -> dict[str, Any]:
        idx = np.arange(self.n_bins) if bins is None else bins
        count = int(self.acc.counts[idx].sum())
        overall = self.acc.overall(idx)
        bal = self.acc.balanced(idx)
        if overall is None or bal is None:
            return {"count": 0, "n_ages": 0, **{m: None for m in METRICS}}
        return {
            "count": count,
            "n_ages": int((self.acc.counts[idx] > 0).sum()),
            "mse": float(overall[1]),
            "l1": float(overall[0]),
            "gmean": float(np.exp(overall[2])),
            "bmse": float(bal[1]),
            "bmae": float(bal[0]),
        }

    def compute(self) -> dict[str, dict[str, Any]]:
        """``{"overall"|"many"|"medium"|"few": {"count", "n_ages", "mse", "l1", "gmean", "bmse",
        "bmae"}}``; metrics are ``None`` for a shot without test samples."""
        out = {"overall": self._block(None)}
        for shot in SHOTS:
            out[shot] = self._block(bins_of_shot(self.shots, shot))
        return out

    def per_age(self) -> dict[str, np.ndarray]:
        """Per integer age: test ``count``, training count, mean ``abs`` and ``sq`` error (NaN where
        the age has no test sample), for plots."""
        pb = self.acc.per_bin()
        return {
            "age": np.arange(self.n_bins),
            "count": self.acc.counts.copy(),
            "train_count": self.train_counts.copy(),
            "mae": pb[:, 0],
            "mse": pb[:, 1],
        }


def dir_metrics(
    pred: Any, target: Any, train_labels: Any, many: int = 100, few: int = 20, n_bins: int = 201
) -> dict[str, dict[str, Any]]:
    """All DIR age metrics at once (see :class:`AgeMetrics`)."""
    m = AgeMetrics(train_labels, n_bins, many, few)
    m.update(pred, target)
    return m.compute()


def table1_markdown(results: dict[str, dict[str, dict[str, Any]]], digits: int = 3) -> str:
    """Markdown table laid out like the paper's Table 1: one row per method, bMAE and MAE for
    All / Many / Med. / Few, then bMSE, MSE and G-mean (All). Empty shots show as "–".

    Args:
        results: method name -> output of :meth:`AgeMetrics.compute`.
    """

    def f(block: dict[str, Any], key: str) -> str:
        v = block.get(key)
        return "–" if v is None else f"{v:.{digits}f}"

    head = (
        "| Method | bMAE All | bMAE Many | bMAE Med. | bMAE Few | MAE All | MAE Many | MAE Med. "
        "| MAE Few | bMSE All | MSE All | G-mean All |"
    )
    lines = [head, "|" + "---|" * 12]
    for name, r in results.items():
        cells = [f(r[s], "bmae") for s in ("overall", *SHOTS)] + [
            f(r[s], "l1") for s in ("overall", *SHOTS)
        ]
        cells += [f(r["overall"], "bmse"), f(r["overall"], "mse"), f(r["overall"], "gmean")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counts = next(iter(results.values())) if results else None
    if counts:
        lines.append("")
        lines.append(
            "Test samples (ages): "
            + ", ".join(
                f"{s} {counts[s]['count']} ({counts[s]['n_ages']})" for s in ("overall", *SHOTS)
            )
        )
    return "\n".join(lines) + "\n"
