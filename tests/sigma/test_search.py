"""search_sigma: grid and bracket against known minima, warm start, and each bad input's error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ihmr.errors import ConfigError, DataError
from ihmr.sigma import holdout_split, search_sigma, validation_score


def test_grid_picks_the_minimum_and_keeps_every_candidate():
    calls = []

    def score(s):
        calls.append(s)
        return (math.log(s) - math.log(0.7)) ** 2

    res = search_sigma(score, [2.0, 0.5, 1.0, 0.25, 1.0])
    assert calls == [0.25, 0.5, 1.0, 2.0]  # sorted, duplicates once
    assert res.sigma == 0.5  # |log 0.5 - log 0.7| = 0.336 < |log 1 - log 0.7| = 0.357
    assert [c.sigma for c in res.candidates] == calls
    assert res.curve.shape == (4, 2)
    assert res.curve[:, 1] == pytest.approx([(math.log(s) - math.log(0.7)) ** 2 for s in calls])
    assert not res.reused_model
    assert sum(r["chosen"] for r in res.table()) == 1


def test_bracket_finds_a_log_minimum():
    res = search_sigma(
        lambda s: (math.log(s) - math.log(0.37)) ** 2, bracket=(0.01, 100.0), evals=16
    )
    assert len(res.candidates) == 16
    assert res.sigma == pytest.approx(0.37, rel=0.05)


def test_warm_start_is_built_once_and_handed_to_every_candidate():
    built = []

    def warm():
        built.append(1)
        return {"mse_model": 3.0}

    res = search_sigma(
        lambda s, start: (s - start["mse_model"]) ** 2, [1.0, 2.0, 4.0], warm_start=warm
    )
    assert built == [1] and res.reused_model and res.sigma == 2.0  # (2-3)^2 = (4-3)^2: smaller


def test_diverged_candidates_are_never_chosen():
    res = search_sigma(lambda s: math.inf if s > 1 else 1.0 / s, [0.5, 1.0, 2.0])
    assert res.sigma == 1.0
    with pytest.raises(DataError, match="every candidate sigma"):
        search_sigma(lambda s: math.inf, [0.5, 1.0])


@pytest.mark.parametrize(
    "grid, match",
    [
        ([], "grid is empty"),
        ([0.1, 0.0], "got 0 in the grid"),
        ([-1.0], "got -1 in the grid"),
        ([float("nan")], "finite number > 0"),
    ],
)
def test_bad_grids(grid, match):
    with pytest.raises(ConfigError, match=match):
        search_sigma(lambda s: 1.0, grid)


def test_nan_score_names_the_sigma():
    with pytest.raises(DataError, match=r"returned NaN for sigma=0\.3"):
        search_sigma(lambda s: float("nan") if s == 0.3 else 1.0, [0.1, 0.3])


def test_holdout_split_is_stratified_and_refuses_one_bin():
    rng = np.random.default_rng(0)
    bins = np.concatenate([np.zeros(500, int), np.ones(40, int), [2, 2], [3]])
    rng.shuffle(bins)
    tr, va = holdout_split(bins, 0.1, seed=1)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(bins)
    got = np.bincount(bins[va], minlength=4)
    assert got.tolist() == [50, 4, 1, 0]  # 10% per bin, >= 1, the single-sample bin stays
    assert tr.tolist() == sorted(tr.tolist())
    with pytest.raises(DataError, match="covers 1 non-empty label bin"):
        holdout_split(np.zeros(100, int), 0.1)
    with pytest.raises(DataError, match="covers 1 non-empty label bin"):
        validation_score({"bins": 1, "bmae": 2.0})
    assert validation_score({"bins": 3, "bmae": 2.0}) == 2.0


def test_refine_converges_between_grid_points():
    f = lambda s: (math.log(s) - math.log(0.37)) ** 2 + 0.1 * (math.log(s) - math.log(0.37)) ** 3  # noqa: E731
    res = search_sigma(f, [0.1, 0.3, 1.0, 3.0], refine=3)
    assert [c.stage for c in res.candidates] == ["grid"] * 4 + ["refine"] * 3
    assert res.sigma == pytest.approx(0.37, rel=0.01)  # grid alone: 0.3
    # a minimum at the end of the grid is not extrapolated
    res = search_sigma(lambda s: s, [0.1, 0.3, 1.0], refine=3)
    assert res.sigma == 0.1 and len(res.candidates) == 3


def test_per_model_sigma_equals_separate_runs():
    from ihmr.synthetic import spec as S
    from ihmr.synthetic.benchmark import _train_family
    from ihmr.synthetic.models import ModelSpec

    groups = [("normal", "high", "linear", 0), ("normal", "high", "linear", 1)]
    args = (
        "t",
        ModelSpec("linear", 1, 1),
        S.PROTOCOL_1D,
        groups,
        ("bmc_true",),
        6,
        None,
        0.5,
        "torch",
    )
    both = _train_family(*args, sigma_true=np.array([0.5, 2.0])).result  # one sigma per group
    for g, s in enumerate([0.5, 2.0]):
        one = _train_family(*args, sigma_true=s).result
        assert both.test_mse[g, 0] == pytest.approx(one.test_mse[g, 0], rel=1e-6)
        assert both.sigma[g, 0] == pytest.approx(s)
    assert both.test_mse[0, 0] != pytest.approx(both.test_mse[1, 0], rel=1e-3)
