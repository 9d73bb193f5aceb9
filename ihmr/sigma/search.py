"""Choose the noise scale sigma of Balanced MSE by a search on a validation score.

Sigma is the one knob of Balanced MSE (paper Eq. 3.5-3.7: the balanced NLL's ``2 sigma^2`` scale
and the width of the label kernel). It can be learned with the model (``learn_noise``) or, as the
paper notes in Sec. 3.5, chosen by a cheap search; docs/sigma.md says when to do which.

:func:`search_sigma` evaluates a caller's ``score(sigma)`` (lower is better; e.g. the balanced
MAE of held-out training samples, :mod:`ihmr.metrics.regression`) on a grid or a bracket and
returns the chosen sigma with every candidate's score. With ``warm_start`` the caller trains one
shared start once (typically a plain-MSE model) and every candidate is a short fine-tune from it
(``score(sigma, start)``) instead of a full run; the result says which was done.

A candidate whose training diverged should score ``math.inf`` (it is then never chosen); a NaN
score is a bug in the caller and is refused.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError, DataError

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclasses.dataclass
class Candidate:
    """One evaluated sigma: its validation score, how long it took, how it was found."""

    sigma: float
    score: float
    seconds: float
    stage: str = "grid"
    info: Any = None
    """Whatever the score callable returned beside the score (``(score, info)`` tuples)."""


@dataclasses.dataclass
class SigmaSearch:
    """Result of :func:`search_sigma`."""

    sigma: float
    """The chosen sigma (lowest score; the smaller sigma on a tie)."""
    score: float
    """Its validation score."""
    candidates: list[Candidate]
    """Every evaluation, in the order it was made."""
    reused_model: bool
    """True when candidates were fine-tuned from one shared ``warm_start`` instead of trained
    from scratch."""
    warm_start_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def curve(self) -> np.ndarray:
        """(K, 2) ``[sigma, score]`` of the distinct candidates, sorted by sigma."""
        best: dict[float, float] = {}
        for c in self.candidates:
            best[c.sigma] = min(c.score, best.get(c.sigma, math.inf))
        return np.array(sorted(best.items()), dtype=np.float64).reshape(-1, 2)

    def table(self) -> list[dict[str, Any]]:
        """Rows ``{"sigma", "score", "seconds", "stage", "chosen"}`` for a CSV or Markdown table."""
        return [
            {
                "sigma": c.sigma,
                "score": c.score,
                "seconds": round(c.seconds, 3),
                "stage": c.stage,
                "chosen": c.sigma == self.sigma,
            }
            for c in self.candidates
        ]


def check_sigmas(grid: Sequence[float]) -> list[float]:
    """The grid as sorted distinct floats; refused if empty or holding a sigma <= 0 / not finite."""
    values = [float(s) for s in grid]
    if not values:
        raise ConfigError(
            "the sigma grid is empty: give at least one sigma > 0, e.g. --grid 0.1,0.3,1,3"
        )
    for s in values:
        if not (math.isfinite(s) and s > 0):
            raise ConfigError(
                f"sigma must be a finite number > 0, got {s:g} in the grid "
                f"{values}; sigma is the label noise's standard deviation"
            )
    return sorted(set(values))


def _evaluate(score: Callable, sigma: float, start: Any, use_start: bool, stage: str) -> Candidate:
    t0 = time.perf_counter()
    out = score(sigma, start) if use_start else score(sigma)
    info = None
    if isinstance(out, tuple):
        out, info = out
    try:
        value = float(out)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"the score callable returned {out!r} for sigma={sigma:g}; it must "
            "return a number (lower is better)"
        ) from exc
    if math.isnan(value):
        raise DataError(
            f"the score callable returned NaN for sigma={sigma:g}; return math.inf "
            "for a run that diverged, or fix the validation metric (an empty "
            "validation set or a NaN prediction gives NaN)"
        )
    if value == -math.inf:
        raise DataError(
            f"the score callable returned -inf for sigma={sigma:g}; scores are "
            "errors (lower is better) and cannot be -inf"
        )
    return Candidate(sigma, value, time.perf_counter() - t0, stage, info)


def parabolic_step(candidates: Sequence[Candidate]) -> float | None:
    """Next sigma of successive parabolic interpolation in ``log sigma``: the vertex of the
    parabola through the best finite candidate and its two neighbours in sigma. None when the
    best is the smallest or largest sigma tried (the minimum may lie beyond), when the three
    points are not convex, or when the vertex was already evaluated."""
    pts = sorted({c.sigma: c.score for c in candidates if math.isfinite(c.score)}.items())
    if len(pts) < 3:
        return None
    i = min(range(len(pts)), key=lambda k: (pts[k][1], pts[k][0]))
    if i in (0, len(pts) - 1):  # the minimum may lie beyond the grid: widen it, do not guess
        return None
    (x0, f0), (x1, f1), (x2, f2) = [(math.log(s), f) for s, f in pts[i - 1 : i + 2]]
    den = (x1 - x0) * (f1 - f2) - (x1 - x2) * (f1 - f0)
    if den == 0:
        return None
    num = (x1 - x0) ** 2 * (f1 - f2) - (x1 - x2) ** 2 * (f1 - f0)
    x = x1 - 0.5 * num / den
    curv = (f2 - f1) / (x2 - x1) - (f1 - f0) / (x1 - x0)  # > 0: convex through the points
    if curv <= 0 or not x0 < x < x2:
        return None
    sigma = float(math.exp(x))
    if any(math.isclose(sigma, s, rel_tol=1e-9) for s, _ in pts):
        return None
    return sigma


def search_sigma(
    score: Callable[..., Any],
    grid: Sequence[float] | None = None,
    *,
    bracket: tuple[float, float] | None = None,
    evals: int = 8,
    refine: int = 0,
    warm_start: Callable[[], Any] | None = None,
) -> SigmaSearch:
    """Choose sigma by minimising ``score`` over a grid or inside a bracket.

    Args:
        score: ``score(sigma) -> float`` (or ``(float, info)``); with ``warm_start``,
            ``score(sigma, start)``. Lower is better; ``math.inf`` marks a diverged run.
        grid: sigmas to try (each once, in increasing order).
        bracket: ``(low, high)`` instead of a grid: golden-section search on ``log sigma`` with
            ``evals`` evaluations (both ends included), assuming one minimum in the bracket.
        evals: evaluations of a bracket search (>= 3).
        refine: after a grid, up to this many steps of successive parabolic interpolation in
            ``log sigma`` around the best point (:func:`parabolic_step`); each step is one more
            evaluation, for a sigma between grid points.
        warm_start: ``() -> start``, called once before the candidates (e.g. train plain MSE for
            the full schedule); its result is handed to every ``score`` call, which then only
            fine-tunes (``reused_model=True`` in the result).

    Returns:
        :class:`SigmaSearch` with the chosen sigma, every candidate and the curve.
    """
    t0 = time.perf_counter()
    if (grid is None) == (bracket is None):
        raise ConfigError("give either a sigma grid or a bracket=(low, high), not both or neither")
    start, use_start, warm_seconds = None, warm_start is not None, 0.0
    if use_start:
        t_w = time.perf_counter()
        start = warm_start()
        warm_seconds = time.perf_counter() - t_w
    if grid is not None:
        cands = [_evaluate(score, s, start, use_start, "grid") for s in check_sigmas(grid)]
        for _ in range(int(refine)):
            nxt = parabolic_step(cands)
            if nxt is None:
                break
            cands.append(_evaluate(score, nxt, start, use_start, "refine"))
    else:
        cands = _golden(score, bracket, evals, start, use_start)
    finite = [c for c in cands if math.isfinite(c.score)]
    if not finite:
        raise DataError(
            f"every candidate sigma ({', '.join(f'{c.sigma:g}' for c in cands)}) "
            "diverged (score inf); try smaller sigmas, a lower learning rate, or "
            "check the data"
        )
    best = min(finite, key=lambda c: (c.score, c.sigma))
    return SigmaSearch(
        best.sigma, best.score, cands, use_start, warm_seconds, time.perf_counter() - t0
    )


def _golden(score, bracket, evals, start, use_start) -> list[Candidate]:
    lo, hi = check_sigmas(bracket)[0], max(check_sigmas(bracket))
    if not (len(bracket) == 2 and hi > lo):
        raise ConfigError(f"bracket must be (low, high) with 0 < low < high, got {tuple(bracket)}")
    if evals < 3:
        raise ConfigError(f"a bracket search needs evals >= 3, got {evals}")
    a, b = math.log(lo), math.log(hi)
    seen: dict[float, Candidate] = {}
    cands: list[Candidate] = []

    def f(x: float, stage: str) -> float:
        s = float(math.exp(x))
        if s not in seen:
            seen[s] = _evaluate(score, s, start, use_start, stage)
            cands.append(seen[s])
        return seen[s].score

    fa, fb = f(a, "bracket"), f(b, "bracket")
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc = f(c, "golden")
    fd = f(d, "golden") if len(cands) < evals else math.inf
    while len(cands) < evals:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = f(c, "golden")
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = f(d, "golden")
    del fa, fb
    return cands
