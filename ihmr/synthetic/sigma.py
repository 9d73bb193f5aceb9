"""Sigma chosen on the validation set, on the settings of Table 4 (docs/sigma.md).

For every candidate sigma of a grid, GAI and BMC with that sigma fixed are trained on every
setting and seed under the full protocol (the batched trainer, :func:`.benchmark._train_family`);
each (setting, method, seed) then picks its sigma with :func:`ihmr.sigma.search_sigma` on the
*validation* MSE of its selected model, and is reported with the test MSE of the model trained at
that sigma, beside GAI/BMC with the true sigma (1) and with a learned sigma (the benchmark's runs).

Validation set: the protocol's own (App. B.1): 1,024 samples drawn from the uniform label
distribution, noise-free, disjoint from the test set (its own draw). It is already balanced over
the label range, so its plain MSE is a balanced score; no held-out training samples are needed
here (the training set is the skewed one). The test set is only used for the reported numbers.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np

from ..sigma import Candidate, check_sigmas, parabolic_step, search_sigma
from . import spec as S
from .benchmark import SynthConfig, _records, _train_family, run_benchmark
from .models import ModelSpec

TUNED = {"gai": "gai_true", "bmc": "bmc_true"}


@dataclasses.dataclass
class SigmaRow:
    """One (distribution, skew, method) of the study: test MSE mean/std over seeds."""

    distribution: str
    skew: str
    method: str
    true: tuple[float, float]
    learned: tuple[float, float]
    chosen: tuple[float, float]
    sigmas: list[float]

    @property
    def within_2x(self) -> bool:
        return self.chosen[0] <= 2.0 * self.true[0]

    @property
    def vs_learned_ok(self) -> bool:
        """Chosen-sigma mean test MSE no worse than learned sigma's by more than its seed std."""
        return self.chosen[0] <= self.learned[0] + self.learned[1]


def _mean_std(v: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def tune_table4(
    grid: Sequence[float],
    seeds: int = 5,
    distributions: Sequence[str] = S.DISTRIBUTIONS,
    skews: Sequence[str] = S.SKEWS,
    refine: int = 2,
    epochs_scale: float = 1.0,
    backend: str = "auto",
    log: Callable[[str], None] = lambda m: None,
) -> dict:
    """Run the study; returns ``{"rows": [SigmaRow], "seconds": {...}, "grid": [...]}``.

    Every (setting, method, seed) runs :func:`ihmr.sigma.search_sigma` on ``grid`` with
    ``refine`` steps of parabolic interpolation. The grid is trained once for all of them; each
    refinement step is one more batched run in which every model has its own sigma.
    """
    grid = check_sigmas(grid)
    ep1 = max(1, int(S.PROTOCOL_1D.epochs * epochs_scale))
    ep2 = max(1, int(S.PROTOCOL_2D.epochs * epochs_scale))
    cfg = SynthConfig(
        distributions=tuple(distributions),
        skews=tuple(skews),
        methods=("gai_true", "gai", "bmc_true", "bmc"),
        seeds=seeds,
        nonlinear=False,
        backend=backend,
        epochs_1d=ep1,
        epochs_2d=ep2,
    ).validate()
    t0 = time.perf_counter()
    base = run_benchmark(cfg)
    seconds = {"baseline": time.perf_counter() - t0}
    log(f"true and learned sigma: {seconds['baseline']:.1f} s")

    plans = []
    one_d = [d for d in cfg.distributions if d != "mvn"]
    if one_d:
        plans.append(
            (
                "1-D linear",
                ModelSpec("linear", 1, 1),
                S.PROTOCOL_1D,
                [(d, k, "linear", s) for d in one_d for k in cfg.skews for s in range(seeds)],
                ep1,
            )
        )
    if "mvn" in cfg.distributions:
        plans.append(
            (
                "2-D linear",
                ModelSpec("linear", 2, 2),
                S.PROTOCOL_2D,
                [("mvn", k, "linear", s) for k in cfg.skews for s in range(seeds)],
                ep2,
            )
        )
    fixed = ("gai_true", "bmc_true")
    results: dict[tuple, dict[float, dict]] = {}  # (dist, skew, method, seed) -> sigma -> record

    def train_all(label: str, sigma_of: Callable[[tuple], float]) -> None:
        """One batched run per family, every model at ``sigma_of(key)``; records the results."""
        t = time.perf_counter()
        for name, mspec, protocol, groups, epochs in plans:
            sig = np.array([[sigma_of((d, k, m, s)) for m in fixed] for d, k, _, s in groups])
            run = _train_family(
                name,
                mspec,
                protocol,
                groups,
                fixed,
                epochs,
                None,
                cfg.select_after,
                cfg.backend,
                sigma_true=sig,
            )
            recs = _records(run)  # group by group, methods in the order of ``fixed``
            for gi, (d, k, _, seed) in enumerate(groups):
                for mi, m in enumerate(fixed):
                    results.setdefault((d, k, m, seed), {}).setdefault(
                        float(sig[gi, mi]), recs[gi * len(fixed) + mi]
                    )
        seconds[label] = time.perf_counter() - t
        log(f"{label}: {seconds[label]:.1f} s")

    for s in grid:  # all settings train together at each grid sigma
        train_all(f"sigma={s:g}", lambda key, s=s: s)
    keys = [
        (d, k, m, s)
        for d in cfg.distributions
        for k in cfg.skews
        for m in fixed
        for s in range(seeds)
    ]
    for step in range(refine):  # successive parabolic steps, each model at its own next sigma
        nxt = {}
        for key in keys:
            cands = [Candidate(s, r["val_mse"], 0.0) for s, r in results[key].items()]
            nxt[key] = parabolic_step(cands)
        if all(v is None for v in nxt.values()):
            break
        # a model without a next step repeats its best sigma (its result is simply not used)
        best = {k: min(results[k], key=lambda s: results[k][s]["val_mse"]) for k in keys}
        train_all(f"refine {step + 1}", lambda key, nxt=nxt, best=best: nxt[key] or best[key])

    by_key = {(r["distribution"], r["skew"], r["method"], r["seed"]): r for r in base.records}
    rows = []
    for dist in cfg.distributions:
        for skew in cfg.skews:
            for method, fixed_name in TUNED.items():
                chosen, sigmas = [], []
                for seed in range(seeds):
                    res_k = results[(dist, skew, fixed_name, seed)]
                    found = search_sigma(
                        lambda s, res_k=res_k: (res_k[s]["val_mse"], res_k[s]["test_mse"]),
                        grid,
                        refine=refine,
                    )
                    chosen.append(next(c.info for c in found.candidates if c.sigma == found.sigma))
                    sigmas.append(found.sigma)
                rows.append(
                    SigmaRow(
                        dist,
                        skew,
                        method,
                        _mean_std(
                            [by_key[(dist, skew, fixed_name, s)]["test_mse"] for s in range(seeds)]
                        ),
                        _mean_std(
                            [by_key[(dist, skew, method, s)]["test_mse"] for s in range(seeds)]
                        ),
                        _mean_std(chosen),
                        sigmas,
                    )
                )
    seconds["total"] = time.perf_counter() - t0
    return {
        "rows": rows,
        "seconds": seconds,
        "grid": grid,
        "refine": refine,
        "seeds": seeds,
        "epochs": {"1-D": ep1, "2-D": ep2},
    }


def markdown(study: dict) -> str:
    """The study as a Markdown table plus the two counts of the acceptance rule."""
    f = lambda ms: f"{ms[0]:.3f} ± {ms[1]:.3f}"  # noqa: E731
    lines = [
        "| setting | method | true σ | learned σ | σ chosen on val. | chosen σ (per seed) "
        "| ≤ 2x true | ≤ learned + std |",
        "|---|---|---:|---:|---:|---|:-:|:-:|",
    ]
    for r in study["rows"]:
        lines.append(
            f"| {r.distribution} {r.skew} | {r.method.upper()} | {f(r.true)} | "
            f"{f(r.learned)} | {f(r.chosen)} | "
            f"{', '.join(f'{s:.3g}' for s in r.sigmas)} | "
            f"{'yes' if r.within_2x else 'no'} | {'yes' if r.vs_learned_ok else 'no'} |"
        )
    lines.append("")
    for method in TUNED:
        rows = [r for r in study["rows"] if r.method == method]
        lines.append(
            f"{method.upper()}: within 2x of the true sigma in "
            f"{sum(r.within_2x for r in rows)} of {len(rows)} settings; no worse than "
            f"the learned sigma by more than its seed spread in "
            f"{sum(r.vs_learned_ok for r in rows)} of {len(rows)}."
        )
    return "\n".join(lines) + "\n"
