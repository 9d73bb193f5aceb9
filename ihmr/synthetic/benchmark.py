"""Orchestration of the synthetic benchmark: build the data, train every model, collect records.

Three families are trained, each as one batched program (:func:`~.batched.train_batched`):

- 1-D linear: Normal and Exponential labels x 3 skews x seeds, ``nn.Linear(1, 1)``, SGD.
- 2-D linear: MVN labels x 3 skews x seeds, ``nn.Linear(2, 2)``, Adam.
- Nonlinear (Fig. 4): four oracles, Normal/Moderate labels, one-hidden-layer MLP, Adam; the
  first seed only (the figure is qualitative).

Every model is selected on the validation MSE (best epoch) and reported with its test MSE.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError, check_choice
from . import spec as S
from .batched import TrainResult, TrainSet, train_batched
from .data import fit_true_prior, make_dataset
from .models import ModelSpec, init_params


@dataclasses.dataclass
class SynthConfig:
    """What to run (defaults: the whole Table 4 plus the nonlinear figure)."""

    distributions: tuple[str, ...] = S.DISTRIBUTIONS
    """Subset of normal / exponential / mvn."""
    skews: tuple[str, ...] = S.SKEWS
    """Subset of high / moderate / low."""
    methods: tuple[str, ...] = S.METHODS
    """Subset of vanilla / reweight / gai_true / gai / bmc_true / bmc."""
    seeds: int = 5
    """Number of seeds (0 .. seeds-1) per setting; mean and std are reported."""
    nonlinear: bool = True
    """Also train the nonlinear regressions of Fig. 4 (first seed only)."""
    hidden: int = 32
    """Hidden width of the nonlinear MLP."""
    select_after: float = 0.5
    """Model selection picks the best validation epoch among the last ``1 - select_after`` of
    training (validation after every epoch there). 0 selects over all epochs: the validation
    set is drawn from the uniform test distribution, so selecting during the first epochs picks
    the moment a still-training line crosses the oracle (see docs/synthetic.md)."""
    backend: str = "auto"
    """How models train: "compiled" (numba kernels, float32), "torch" (batched torch
    operations, the reference) or "auto" (compiled where numba is installed)."""
    epochs_1d: int = S.PROTOCOL_1D.epochs
    epochs_2d: int = S.PROTOCOL_2D.epochs
    epochs_nonlinear: int = S.PROTOCOL_NONLINEAR.epochs

    def validate(self) -> "SynthConfig":
        """Check names (suggesting the closest), counts and epochs; return a canonical copy."""
        for values, choices, what in (
            (self.distributions, S.DISTRIBUTIONS, "distribution"),
            (self.skews, S.SKEWS, "skew"),
            (self.methods, S.METHODS, "method"),
        ):
            if not values:
                raise ConfigError(f"select at least one {what} (choices: {list(choices)})")
            for v in values:
                check_choice(v, choices, what)
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"seeds must be an integer >= 1, got {self.seeds!r}; e.g. --seeds 5")
        check_choice(self.backend, ("auto", "compiled", "torch"), "backend")
        if not 0.0 <= float(self.select_after) < 1.0:
            raise ConfigError(f"select_after must be in [0, 1), got {self.select_after!r}")
        for name in ("epochs_1d", "epochs_2d", "epochs_nonlinear", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        return dataclasses.replace(
            self,
            distributions=tuple(x for x in S.DISTRIBUTIONS if x in self.distributions),
            skews=tuple(x for x in S.SKEWS if x in self.skews),
            methods=tuple(x for x in S.METHODS if x in self.methods),
        )


@dataclasses.dataclass
class FamilyRun:
    """One batched program: its groups' datasets (one per (setting, seed)), result and time."""

    name: str
    spec: ModelSpec
    groups: list  # (distribution, skew, function, seed) per group
    datasets: list
    result: TrainResult
    seconds: float


@dataclasses.dataclass
class BenchmarkResult:
    config: SynthConfig
    records: list
    nonlinear_records: list
    families: dict
    seconds: dict


def _priors(settings: Sequence[tuple[str, str]], needed: bool) -> dict:
    if not needed:
        return {}
    return {
        (dist, skew): fit_true_prior(dist, skew, S.GAI_COMPONENTS[dist])
        for dist, skew in dict.fromkeys(settings)
    }


def _train_family(
    name,
    spec,
    protocol,
    groups,
    methods,
    epochs,
    progress,
    select_after: float = 0.5,
    backend: str = "auto",
    sigma_true: float | np.ndarray = S.NOISE_SIGMA,
) -> FamilyRun:
    t0 = time.perf_counter()
    datasets = [make_dataset(dist, skew, seed, protocol, fn) for dist, skew, fn, seed in groups]
    need_prior = any(m in ("gai_true", "gai") for m in methods)
    priors = _priors([(g[0], g[1]) for g in groups], need_prior)
    keys = [
        [
            seed,
            S.DISTRIBUTIONS.index(dist),
            S.SKEWS.index(skew),
            (("linear",) + S.NONLINEAR_FUNCTIONS).index(fn),
        ]
        for dist, skew, fn, seed in groups
    ]
    data = TrainSet(
        x_train=np.stack([d.x_train for d in datasets]),
        y_train=np.stack([d.y_train for d in datasets]),
        inv_density=np.stack([1.0 / d.density_train for d in datasets]),
        x_val=np.stack([d.x_val for d in datasets]),
        y_val=np.stack([d.y_val for d in datasets]),
        x_test=np.stack([d.x_test for d in datasets]),
        y_test=np.stack([d.y_test for d in datasets]),
        init=np.stack([init_params(spec, np.random.default_rng(k + [11])) for k in keys]),
        shuffle_keys=[k + [23] for k in keys],
        priors=[priors[(g[0], g[1])] for g in groups] if need_prior else None,
    )
    result = train_batched(
        spec,
        protocol,
        methods,
        data,
        sigma_true=sigma_true,
        sigma_init=S.LEARNED_SIGMA_INIT * S.NOISE_SIGMA,
        epochs=epochs,
        progress=progress,
        select_from=int(select_after * epochs) + 1,
        backend=backend,
    )
    return FamilyRun(name, spec, list(groups), datasets, result, time.perf_counter() - t0)


def _records(run: FamilyRun) -> list[dict]:
    res = run.result
    out = []
    for g, (dist, skew, fn, seed) in enumerate(run.groups):
        for r, method in enumerate(res.methods):
            rec = {
                "distribution": dist if fn == "linear" else fn,
                "skew": skew,
                "method": method,
                "seed": seed,
                "test_mse": float(res.test_mse[g, r]),
                "last_epoch_test_mse": float(res.last_test_mse[g, r]),
                "selected_epoch": int(res.best_epoch[g, r]),
                "val_mse": float(res.best_val_mse[g, r]),
            }
            if method in ("gai_true", "gai", "bmc_true", "bmc"):
                rec["sigma"] = float(res.sigma[g, r])
                rec["last_sigma"] = float(res.last_sigma[g, r])
            if run.spec.kind == "linear":
                a = res.params[g, r].reshape(run.spec.d_out, run.spec.d_in + 1)
                rec["weight"] = a[:, :-1].tolist()
                rec["bias"] = a[:, -1].tolist()
            out.append(rec)
    return out


def run_benchmark(
    config: SynthConfig,
    progress: Callable[[str, int, int], None] | None = None,
) -> BenchmarkResult:
    """Run the configured benchmark. ``progress(family, epochs_done, epochs_total)``."""
    cfg = config.validate()
    seeds = range(cfg.seeds)
    plans = []
    one_d = [d for d in cfg.distributions if d != "mvn"]
    if one_d:
        groups = [(d, k, "linear", s) for d in one_d for k in cfg.skews for s in seeds]
        plans.append(
            ("1-D linear", ModelSpec("linear", 1, 1), S.PROTOCOL_1D, groups, cfg.epochs_1d)
        )
    if "mvn" in cfg.distributions:
        groups = [("mvn", k, "linear", s) for k in cfg.skews for s in seeds]
        plans.append(
            ("2-D linear", ModelSpec("linear", 2, 2), S.PROTOCOL_2D, groups, cfg.epochs_2d)
        )
    if cfg.nonlinear:
        dist, skew = S.NONLINEAR_SKEW
        groups = [(dist, skew, fn, 0) for fn in S.NONLINEAR_FUNCTIONS]
        plans.append(
            (
                "nonlinear",
                ModelSpec("mlp", 1, 1, cfg.hidden),
                S.PROTOCOL_NONLINEAR,
                groups,
                cfg.epochs_nonlinear,
            )
        )

    families, records, nonlinear_records, seconds = {}, [], [], {}
    for name, mspec, protocol, groups, epochs in plans:
        cb = None if progress is None else functools.partial(_report, progress, name, epochs)
        run = _train_family(
            name, mspec, protocol, groups, cfg.methods, epochs, cb, cfg.select_after, cfg.backend
        )
        families[name] = run
        seconds[name] = run.seconds
        (nonlinear_records if name == "nonlinear" else records).extend(_records(run))
    seconds["table"] = sum(v for k, v in seconds.items() if k != "nonlinear")
    return BenchmarkResult(cfg, records, nonlinear_records, families, seconds)


def _report(progress, name: str, total: int, done: int) -> None:
    progress(name, done, total)


def summarize(records: Sequence[dict]) -> dict:
    """``{(distribution, skew, method): (mean, std, n)}`` of the test MSE over seeds
    (std with ddof = 1, 0 for a single seed)."""
    groups: dict = {}
    for rec in records:
        groups.setdefault((rec["distribution"], rec["skew"], rec["method"]), []).append(
            rec["test_mse"]
        )
    out = {}
    for key, vals in groups.items():
        a = np.asarray(vals, dtype=np.float64)
        out[key] = (float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, len(a))
    return out
