"""Histogram label priors, LDS smoothing and reweighting weights (paper Sec. 3.4, BNI; DIR).

A :class:`BinPrior` holds 1-D bin ``edges`` (Nb+1,), raw ``counts`` (Nb,) and ``smoothed`` counts
(Nb,) (equal to ``counts`` without LDS). Bins are half-open ``[e_b, e_{b+1})`` except the last,
which is closed; labels outside ``[e_0, e_Nb]`` are counted in the nearest end bin (as the DIR code
does with ``min(int(y), max_bin)``). LDS (label distribution smoothing, Yang et al. 2021) convolves
the counts with a peak-normalised kernel, zero-padded at the ends by default (``mode="constant"``,
as ``scipy.ndimage.convolve1d(..., mode='constant')`` in the DIR code).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError, DataError, ShapeError, check_choice, shape_str
from ..io import save_npz
from .gmm import _utc_now, read_prior_npz

KERNELS = ("gaussian", "triangular", "laplace")
WEIGHT_MODES = ("inverse", "sqrt_inv", "none")


@dataclasses.dataclass(frozen=True)
class LDS:
    """Label distribution smoothing settings."""

    kind: str = "gaussian"
    """Kernel: "gaussian", "triangular" or "laplace"."""
    ks: int = 5
    """Kernel size in bins (odd)."""
    sigma: float = 2.0
    """Kernel width in bins (gaussian and laplace)."""
    mode: str = "constant"
    """Padding at the ends: "constant" (zeros, as DIR) or "reflect" (edge bins mirrored)."""


def lds_kernel(kind: str = "gaussian", ks: int = 5, sigma: float = 2.0) -> np.ndarray:
    """Peak-normalised LDS kernel window, (ks,) float64, as in the DIR code.

    gaussian: ``gaussian_filter1d`` of a centred delta (scipy's default reflect mode), divided by
    its maximum; triangular: ``scipy.signal.windows.triang(ks)``; laplace: ``exp(-|x| / sigma)``
    for ``x = -(ks-1)/2 .. (ks-1)/2``. ``"triang"`` is accepted for "triangular".
    """
    kind = "triangular" if kind == "triang" else kind
    check_choice(kind, KERNELS, "LDS kernel")
    if not isinstance(ks, (int, np.integer)) or ks < 1 or ks % 2 == 0:
        raise ConfigError(
            f"LDS kernel size ks must be a positive odd integer, got {ks!r}; "
            "an odd size keeps the kernel centred on its bin (DIR uses 5)"
        )
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"LDS sigma must be a finite number > 0, got {sigma!r}")
    half = (ks - 1) // 2
    if kind == "gaussian":
        from scipy.ndimage import gaussian_filter1d

        delta = np.zeros(ks)
        delta[half] = 1.0
        win = gaussian_filter1d(delta, sigma=sigma)
    elif kind == "triangular":
        from scipy.signal.windows import triang

        win = triang(ks)
    else:
        win = np.exp(-np.abs(np.arange(-half, half + 1, dtype=np.float64)) / sigma)
    return win / win.max()


def smooth_counts(counts: Any, kernel: Any, mode: str = "constant") -> np.ndarray:
    """Convolve bin counts with a kernel, output the same size (Nb,) as ``counts``.

    ``out[i] = sum_j kernel[j] * counts[i + h - j]`` with ``h = (len(kernel) - 1) / 2``; outside
    the bins the counts are 0 (``mode="constant"``, the DIR choice) or mirrored with the edge bin
    repeated (``mode="reflect"``). Equals ``scipy.ndimage.convolve1d(counts, kernel, mode=mode)``.
    """
    check_choice(mode, ("constant", "reflect"), "LDS padding mode")
    c = np.asarray(counts, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ShapeError(f"counts must have shape (Nb,) with Nb >= 1, got {shape_str(c.shape)}")
    if k.ndim != 1 or k.size % 2 == 0:
        raise ShapeError(f"kernel must have shape (ks,) with ks odd, got {shape_str(k.shape)}")
    h = (k.size - 1) // 2
    # numpy's "symmetric" padding repeats the edge sample, which is scipy's "reflect"
    padded = np.pad(c, h) if mode == "constant" else np.pad(c, h, mode="symmetric")
    return np.convolve(padded, k, mode="valid")


def parse_bins(spec: str) -> np.ndarray:
    """Edges from ``"a:b:n"``: n equal-width bins on [a, b] -> (n+1,) edges."""
    parts = str(spec).split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise ConfigError(
            f"bins must look like 'start:stop:count', e.g. '0:10:100', got {spec!r}"
        ) from None
    if not (math.isfinite(a) and math.isfinite(b) and b > a and n >= 1):
        raise ConfigError(f"bins {spec!r} need finite start < stop and count >= 1")
    return np.linspace(a, b, n + 1)


def edges_from_width(labels: Any, width: float) -> np.ndarray:
    """Edges of width ``width`` starting at ``floor(min / width) * width`` and covering max."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ConfigError(f"bin width must be a finite number > 0, got {width!r}")
    if y.size == 0 or not np.isfinite(y).all():
        raise DataError("bin width needs at least one label and only finite labels")
    lo = math.floor(y.min() / width) * width
    n = max(1, int(math.floor((y.max() - lo) / width)) + 1)
    return lo + width * np.arange(n + 1)


def _check_edges(edges: Any) -> np.ndarray:
    e = np.array(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise ShapeError(f"edges must have shape (Nb+1,) with Nb >= 1, got {shape_str(e.shape)}")
    if not np.isfinite(e).all() or not (np.diff(e) > 0).all():
        raise DataError(
            "edges must be finite and strictly increasing; e.g. np.linspace(0, 10, 101)"
        )
    return e


def _labels_1d(labels: Any) -> np.ndarray:
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ShapeError(
            f"bin priors are 1-D: labels must have shape (N,) or (N, 1), got "
            f"{shape_str(y.shape)}; use a GMM prior for d > 1"
        )
    bad = int((~np.isfinite(y)).sum())
    if bad:
        raise DataError(
            f"labels contain {bad} of {y.size} NaN or inf value(s); drop them first, "
            "e.g. labels[np.isfinite(labels)]"
        )
    return y


def bin_index(labels: Any, edges: Any) -> np.ndarray:
    """Bin of each label, (N,) int64; half-open bins, last closed, outside clipped to the ends."""
    e = _check_edges(edges)
    y = _labels_1d(labels)
    return np.clip(np.searchsorted(e, y, side="right") - 1, 0, e.size - 2)


@dataclasses.dataclass(frozen=True, eq=False)
class BinPrior:
    """Histogram prior over 1-D bins: raw ``counts`` and (LDS-)``smoothed`` counts per bin."""

    edges: np.ndarray
    counts: np.ndarray
    smoothed: np.ndarray | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        e = _check_edges(self.edges)
        nb = e.size - 1
        c = np.array(self.counts, dtype=np.float64)
        s = c.copy() if self.smoothed is None else np.array(self.smoothed, dtype=np.float64)
        for name, a in (("counts", c), ("smoothed", s)):
            if a.shape != (nb,):
                raise ShapeError(
                    f"{name} must have shape ({nb},) to match {nb + 1} edges, got "
                    f"{shape_str(a.shape)}"
                )
            if not np.isfinite(a).all() or (a < 0).any():
                raise DataError(f"{name} must be finite and >= 0")
        if s.sum() <= 0:
            raise DataError("the prior is empty (all counts are 0): give labels inside the bins")
        meta = dict(self.metadata or {})
        json.dumps(meta)
        for name, value in (("edges", e), ("counts", c), ("smoothed", s), ("metadata", meta)):
            object.__setattr__(self, name, value)

    @property
    def n_bins(self) -> int:
        return int(self.counts.size)

    @property
    def centers(self) -> np.ndarray:
        """(Nb,) bin centres."""
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    @property
    def widths(self) -> np.ndarray:
        return np.diff(self.edges)

    @property
    def probabilities(self) -> np.ndarray:
        """(Nb,) smoothed counts normalised to sum to 1 (the BNI bin weights)."""
        return self.smoothed / self.smoothed.sum()

    @property
    def density(self) -> np.ndarray:
        """(Nb,) piecewise-constant density: ``sum(density * widths) == 1``."""
        return self.probabilities / self.widths

    def bin_index(self, labels: Any) -> np.ndarray:
        return bin_index(labels, self.edges)

    def log_prob(self, labels: Any) -> np.ndarray:
        """log density of each label's bin, (N,) (-inf in empty bins)."""
        with np.errstate(divide="ignore"):
            return np.log(self.density)[self.bin_index(labels)]

    def summary(self, labels: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "bins",
            "bins": self.n_bins,
            "range": [float(self.edges[0]), float(self.edges[-1])],
            "empty_bins": int((self.counts == 0).sum()),
            "lds": self.metadata.get("lds"),
        }
        if labels is not None:
            lp = self.log_prob(labels)
            out["N"] = int(lp.size)
            out["avg_log_likelihood"] = float(lp.mean())
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``edges``, ``counts``, ``smoothed``, ``centers`` and JSON ``metadata``
        atomically (a failed write leaves no file)."""
        meta = {"kind": "bins", **self.metadata}
        meta.setdefault("created", _utc_now())
        return save_npz(
            path,
            edges=self.edges,
            counts=self.counts,
            smoothed=self.smoothed,
            centers=self.centers,
            metadata=np.array(json.dumps(meta)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BinPrior":
        arrays, meta = read_prior_npz(path, ("edges", "counts", "smoothed"), kind="bins")
        try:
            return cls(arrays["edges"], arrays["counts"], arrays["smoothed"], meta)
        except ValueError as exc:
            raise DataError(f"prior file {str(path)!r} holds an invalid bin prior: {exc}") from exc


def _resolve_lds(lds: Any) -> tuple[np.ndarray | None, dict | None, str]:
    if lds is None or lds is False:
        return None, None, "constant"
    if lds is True:
        lds = LDS()
    if isinstance(lds, Mapping):
        names = [f.name for f in dataclasses.fields(LDS)]
        for key in lds:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                raise ConfigError(
                    f"unknown LDS setting {key!r}"
                    + (f"; did you mean {close[0]!r}?" if close else f"; use {names}")
                )
        lds = LDS(**lds)
    if isinstance(lds, LDS):
        check_choice(lds.mode, ("constant", "reflect"), "LDS padding mode")
        return lds_kernel(lds.kind, lds.ks, lds.sigma), dataclasses.asdict(lds), lds.mode
    kernel = np.asarray(lds, dtype=np.float64)
    return kernel, {"kernel": kernel.tolist(), "mode": "constant"}, "constant"


def histogram_prior(
    labels: Any, edges: Any, lds: Any = None, metadata: Mapping[str, Any] | None = None
) -> BinPrior:
    """Histogram of 1-D labels over ``edges`` (Nb+1,), optionally LDS-smoothed.

    Args:
        labels: (N,) or (N, 1) finite labels; those outside the edges count in the end bins
            (a warning gives how many).
        edges: (Nb+1,) strictly increasing bin edges (see :func:`parse_bins`).
        lds: None (no smoothing), True (gaussian, ks 5, sigma 2), an :class:`LDS`, a dict of its
            fields, or an explicit odd-length kernel array.
    """
    e = _check_edges(edges)
    y = _labels_1d(labels)
    kernel, lds_meta, mode = _resolve_lds(lds)  # bad settings fail before any work
    outside = int(((y < e[0]) | (y > e[-1])).sum())
    if outside:
        warnings.warn(
            f"{outside} of {y.size} label(s) lie outside the bins [{e[0]:g}, {e[-1]:g}] "
            "and were counted in the end bins; widen the bins to keep them apart",
            UserWarning,
            stacklevel=2,
        )
    counts = np.bincount(bin_index(y, e), minlength=e.size - 1).astype(np.float64)
    smoothed = counts if kernel is None else smooth_counts(counts, kernel, mode)
    meta = {
        "kind": "bins",
        "n_samples_fitted": int(y.size),
        "n_outside": outside,
        "lds": lds_meta,
        "created": _utc_now(),
    }
    meta.update(dict(metadata or {}))
    return BinPrior(e, counts, smoothed, meta)


def reweighting_weights(
    labels: Any,
    prior: Any,
    mode: str = "inverse",
    clip: tuple[float | None, float | None] | None = None,
) -> np.ndarray:
    """Per-sample loss weights ``w_i ~ p(y_i)^-a`` (a = 1 "inverse", 1/2 "sqrt_inv", 0 "none"),
    normalised to mean 1: (N,) float64.

    ``p`` is the smoothed count of the label's bin for a :class:`BinPrior` (as in the DIR code)
    and the density ``exp(log_prob)`` for a :class:`GMMPrior`. ``clip=(lo, hi)`` clamps ``p``
    before inversion (DIR clips counts to (5, 1000) for "inverse"), either side may be None.
    Computed in log space, so far-tail GMM densities do not overflow.
    """
    check_choice(mode, WEIGHT_MODES, "reweighting mode")
    if isinstance(prior, BinPrior):
        y = _labels_1d(labels)
        with np.errstate(divide="ignore"):
            logp = np.log(prior.smoothed)[prior.bin_index(y)]
    elif hasattr(prior, "log_prob"):
        logp = np.asarray(prior.log_prob(labels), dtype=np.float64)
    else:
        raise TypeError(f"prior must be a BinPrior or GMMPrior, got {type(prior).__name__}")
    if clip is not None:
        lo, hi = clip
        if lo is not None and hi is not None and not lo <= hi:
            raise ConfigError(f"clip must be (lo, hi) with lo <= hi, got {clip!r}")
        with np.errstate(divide="ignore"):
            logp = np.clip(
                logp, None if lo is None else np.log(lo), None if hi is None else np.log(hi)
            )
    a = {"inverse": 1.0, "sqrt_inv": 0.5, "none": 0.0}[mode]
    if a == 0.0:
        return np.ones(logp.size)
    if np.isneginf(logp).any():
        raise DataError(
            f"{int(np.isneginf(logp).sum())} label(s) fall where the prior is 0, so "
            "their weight is infinite; smooth the prior (LDS) or pass clip=(lo, None)"
        )
    logw = -a * logp
    w = np.exp(logw - logw.max())
    return w * (w.size / w.sum())
