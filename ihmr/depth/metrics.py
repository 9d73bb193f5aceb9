"""Depth metrics on the balanced test pixels: overall, per shot and balanced (per-bin averaged).

Per pixel, with prediction ``o`` and ground truth ``t`` in metres (the DIR / Hu et al. set):

    RMSE   = sqrt(mean (o - t)^2)             MAE    = mean |o - t|
    AbsRel = mean |o - t| / t                 log10  = mean |log10 o - log10 t|
    delta_k = share of pixels with max(o / t, t / o) <= 1.25^k,  k = 1, 2, 3

Pixels are pooled over images (the DIR evaluator concatenates all masked pixels), so "overall"
and the shot metrics are sample(pixel)-weighted means; a shot restricts the pool to its depth
bins. The *balanced* variants first average within each 0.1 m depth bin, then over the non-empty
bins (paper Sec. 4.2.2); balanced RMSE is ``sqrt`` of the balanced mean squared error.

Predictions at or below 0 (possible early in training) are clamped to ``EPS = 1e-3`` m before
AbsRel, log10 and delta, so no metric is ever NaN; RMSE and MAE use the clamped value too, which
can only lower the error of a non-physical prediction against a positive ground truth. NaN or
infinite predictions are refused (:class:`~ihmr.errors.NonFiniteError`): no finite value would
be an honest stand-in, and a diverged model must not get a score.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..errors import DataError, NonFiniteError, ShapeError, check_same_shape
from ..metrics.balanced import BinnedMean
from .data import N_BINS, depth_bins

EPS = 1e-3  # metres
COLUMNS = ("mse", "mae", "absrel", "log10", "delta1", "delta2", "delta3")
METRICS = ("rmse", "mae", "absrel", "log10", "delta1", "delta2", "delta3")
SHOT_NAMES = ("many", "medium", "few")


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def pixel_errors(pred, target) -> np.ndarray:
    """Per-pixel error columns ``COLUMNS`` for flat ``pred``/``target`` (N,) metres -> (N, 7).

    ``target`` must be > 0 (masked pixels only); ``pred`` must be finite and is clamped to ``EPS``.
    """
    o, t = _np(pred).ravel(), _np(target).ravel()
    if o.shape != t.shape:
        raise ShapeError(
            f"pred and target must hold the same number of pixels, got {o.size} and {t.size}"
        )
    if t.size and (t.min() <= 0 or not np.isfinite(t).all()):
        raise DataError(
            "ground-truth depth must be finite and > 0 on the evaluated pixels; "
            "check the mask (it must exclude invalid depth)"
        )
    bad = int((~np.isfinite(o)).sum())
    if bad:
        raise NonFiniteError(
            f"predicted depth holds {bad} NaN or infinite value(s) among {o.size} "
            "evaluated pixels; the model diverged: evaluate an earlier checkpoint"
        )
    o = o.clip(EPS)
    err = o - t
    ratio = np.maximum(o / t, t / o)
    return np.stack(
        [
            err**2,
            np.abs(err),
            np.abs(err) / t,
            np.abs(np.log10(o) - np.log10(t)),
            ratio <= 1.25,
            ratio <= 1.25**2,
            ratio <= 1.25**3,
        ],
        axis=1,
    ).astype(np.float64)


def _finish(means: np.ndarray | None) -> dict[str, float] | None:
    if means is None:
        return None
    out = dict(zip(COLUMNS, (float(v) for v in means), strict=True))
    out["rmse"] = math.sqrt(out.pop("mse"))
    return {k: out[k] for k in METRICS}


class DepthMetrics:
    """Streaming depth metrics: call :meth:`update` per batch, :meth:`compute` once at the end.

    Args:
        shots: ``{"many": [bin ids], "medium": [...], "few": [...]}`` (see ``data.load_shots``).
    """

    def __init__(self, shots: Mapping[str, list[int]]) -> None:
        self.shots = {k: list(shots.get(k, [])) for k in SHOT_NAMES}
        self.acc = BinnedMean(N_BINS, len(COLUMNS))

    def update(self, pred, target, mask) -> None:
        """Add the pixels where ``mask`` is true.

        pred, target (..., H, W) metres, mask same shape.
        """
        check_same_shape(pred, target, "pred", "target")
        check_same_shape(target, mask, "target", "mask")
        m = _np(mask).astype(bool)
        t = _np(target)[m]
        self.acc.update(pixel_errors(_np(pred)[m], t), depth_bins(t))

    def compute(self) -> dict:
        """{"overall", "many", "medium", "few"} -> metrics dict (None for an empty shot), plus
        "balanced" -> the same keys for the per-bin averaged variants, and "pixels" per group."""
        out: dict = {"overall": _finish(self.acc.overall())}
        bal: dict = {"overall": _finish(self.acc.balanced())}
        pixels = {"overall": int(self.acc.counts.sum())}
        for shot, bins in self.shots.items():
            out[shot] = _finish(self.acc.overall(bins))
            bal[shot] = _finish(self.acc.balanced(bins))
            pixels[shot] = int(self.acc.counts[bins].sum()) if bins else 0
        out["balanced"] = bal
        out["pixels"] = pixels
        return out

    def per_bin(self) -> dict[str, np.ndarray]:
        """Per-bin RMSE and MAE (N_BINS,), NaN for empty bins, and the pixel counts."""
        pb = self.acc.per_bin()
        return {"rmse": np.sqrt(pb[:, 0]), "mae": pb[:, 1], "counts": self.acc.counts.copy()}


def table2_markdown(results: Mapping[str, Mapping], metric_names=("rmse", "delta1")) -> str:
    """A paper-Table-2 style Markdown table: one row per method, All/Many/Med./Few per metric."""
    heads = {
        "rmse": "RMSE ↓",
        "mae": "MAE ↓",
        "absrel": "AbsRel ↓",
        "log10": "log10 ↓",
        "delta1": "δ1 ↑",
        "delta2": "δ2 ↑",
        "delta3": "δ3 ↑",
    }
    cols = [f"{heads[m]} {s}" for m in metric_names for s in ("All", "Many", "Med.", "Few")]
    lines = ["| Method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, res in results.items():
        cells = []
        for m in metric_names:
            for s in ("overall", "many", "medium", "few"):
                v = (res.get(s) or {}).get(m)
                cells.append("–" if v is None else f"{v:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
