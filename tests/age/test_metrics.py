"""DIR age metrics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ihmr.age.metrics import AgeMetrics, dir_metrics, table1_markdown


def _train_labels():
    # age 30: 150 images (many), age 50: 50 (medium), age 70: 5 (few), age 10: 0 (few)
    return np.repeat([30, 50, 70], [150, 50, 5]).astype(float)


def test_metrics_match_hand_computation():
    ages = np.array([30, 30, 30, 50, 70, 70], dtype=float)
    pred = np.array([31, 29, 34, 47, 60, 72], dtype=float)
    r = dir_metrics(pred, ages, _train_labels())
    err = np.abs(pred - ages)  # 1 1 4 3 10 2
    assert r["overall"]["l1"] == pytest.approx(err.mean())
    assert r["overall"]["mse"] == pytest.approx((err**2).mean())
    assert r["overall"]["gmean"] == pytest.approx(math.prod(err) ** (1 / 6))
    # balanced: per-age means 2, 3, 6 -> mean 11/3; squared: 6, 9, 52 -> 67/3
    assert r["overall"]["bmae"] == pytest.approx(11 / 3)
    assert r["overall"]["bmse"] == pytest.approx(67 / 3)
    assert r["many"]["l1"] == pytest.approx(2.0) and r["many"]["count"] == 3
    assert r["medium"]["bmae"] == pytest.approx(3.0) and r["medium"]["mse"] == pytest.approx(9.0)
    assert r["few"]["l1"] == pytest.approx(6.0) and r["few"]["gmean"] == pytest.approx(
        math.sqrt(20)
    )
    assert r["few"]["n_ages"] == 1


def test_shot_thresholds_are_strict():
    train = np.repeat([1, 2, 3, 4], [101, 100, 20, 19]).astype(float)
    ages = np.array([1, 2, 3, 4], dtype=float)
    r = dir_metrics(ages + 1, ages, train)
    assert (r["many"]["count"], r["medium"]["count"], r["few"]["count"]) == (1, 2, 1)


def test_empty_shot_is_none_not_nan():
    r = dir_metrics(np.array([31.0, 29.0]), np.array([30.0, 30.0]), _train_labels())
    for k in ("mse", "l1", "gmean", "bmae", "bmse"):
        assert r["few"][k] is None and r["medium"][k] is None
    assert r["few"]["count"] == 0
    md = table1_markdown({"m": r})
    assert "nan" not in md.lower() and "–" in md


def test_unseen_test_age_is_few_shot():
    r = dir_metrics(np.array([12.0]), np.array([10.0]), _train_labels())
    assert r["few"]["count"] == 1 and r["few"]["l1"] == pytest.approx(2.0)


def test_streaming_equals_one_shot_and_float_ages_bin_by_floor(rng):
    ages = rng.uniform(0, 90, 500)
    pred = ages + rng.normal(0, 5, 500)
    train = rng.normal(35, 12, 3000).clip(0, 99)
    m = AgeMetrics(train)
    for i in range(0, 500, 77):
        m.update(pred[i : i + 77], ages[i : i + 77])
    a, b = m.compute(), dir_metrics(pred, ages, train)
    for shot in a:
        for k, v in a[shot].items():
            assert v == pytest.approx(b[shot][k])
    # independent bMAE: per integer age (floor), mean abs error, then mean over ages
    bins = np.floor(ages).astype(int)
    per = [np.abs(pred - ages)[bins == k].mean() for k in np.unique(bins)]
    assert a["overall"]["bmae"] == pytest.approx(np.mean(per))


def test_bad_shapes_raise():
    from ihmr.errors import ShapeError

    with pytest.raises(ShapeError):
        dir_metrics(np.zeros((3, 2)), np.zeros(3), _train_labels())
