"""Depth metrics against hand computations and naive per-pixel loops."""

import math

import numpy as np
import pytest

from ihmr.depth.data import N_BINS
from ihmr.depth.metrics import EPS, DepthMetrics, pixel_errors, table2_markdown


def test_pixel_errors_by_hand():
    o = np.array([1.9, 1.0, 5.0, 1.0])
    t = np.array([1.0, 1.0, 4.0, 2.5])
    e = pixel_errors(o, t)
    np.testing.assert_allclose(e[:, 0], [0.81, 0.0, 1.0, 2.25])  # squared error
    np.testing.assert_allclose(e[:, 1], [0.9, 0.0, 1.0, 1.5])  # absolute error
    np.testing.assert_allclose(e[:, 2], [0.9, 0.0, 0.25, 0.6])  # AbsRel
    np.testing.assert_allclose(e[:, 3], [math.log10(1.9), 0.0, math.log10(1.25), math.log10(2.5)])
    # ratio 1.9: only delta3 (1.953); 1: all; 1.25: all (<= is inclusive); 2.5: none.
    np.testing.assert_array_equal(e[:, 4:], [[0, 0, 1], [1, 1, 1], [1, 1, 1], [0, 0, 0]])


def test_non_positive_predictions_are_clamped_not_nan():
    e = pixel_errors(np.array([0.0, -3.0]), np.array([2.0, 2.0]))
    assert np.isfinite(e).all()
    np.testing.assert_allclose(e[:, 1], [2.0 - EPS] * 2)
    np.testing.assert_array_equal(e[:, 4:], 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_predictions_are_refused_not_scored(bad):
    """A NaN prediction has no honest error: clamping it would count a diverged model's pixel as
    a valid (and near-zero depth) prediction."""
    from ihmr.errors import NonFiniteError

    with pytest.raises(NonFiniteError, match="1 NaN or infinite value.* among 3 evaluated pixels"):
        pixel_errors(np.array([1.0, bad, 2.0]), np.array([2.0, 2.0, 2.0]))
    m = DepthMetrics({"many": list(range(N_BINS))})
    pred = np.full((1, 4, 4), 2.0)
    pred[0, 1, 2] = bad
    with pytest.raises(NonFiniteError):
        m.update(pred, np.full((1, 4, 4), 2.5), np.ones((1, 4, 4), bool))
    assert m.acc.counts.sum() == 0  # nothing was counted


def test_target_must_be_positive():
    with pytest.raises(ValueError, match="mask"):
        pixel_errors(np.array([1.0]), np.array([0.0]))


def _naive(pred, target, bins_of_shot):
    """Pooled metrics over pixels in the given bins, written as plain loops."""
    sq = ab = rel = lg = n = d1 = 0.0
    for o, t in zip(pred, target, strict=True):
        b = min(int(t * 10), 99)
        if b not in bins_of_shot:
            continue
        o = max(o, EPS)
        sq += (o - t) ** 2
        ab += abs(o - t)
        rel += abs(o - t) / t
        lg += abs(math.log10(o) - math.log10(t))
        d1 += max(o / t, t / o) <= 1.25
        n += 1
    return {
        "rmse": math.sqrt(sq / n),
        "mae": ab / n,
        "absrel": rel / n,
        "log10": lg / n,
        "delta1": d1 / n,
    }


@pytest.fixture
def scene(rng):
    target = rng.uniform(0.7, 9.0, (3, 12, 16))
    pred = target + rng.normal(0, 0.5, target.shape)
    pred[0, 0, :3] = -1.0  # non-positive predictions
    mask = rng.random(target.shape) < 0.6
    pred[~mask] = 1e6  # must be ignored
    return pred, target, mask


def test_overall_shots_and_balanced_vs_loops(scene):
    pred, target, mask = scene
    shots = {"many": list(range(20, 50)), "medium": list(range(7, 20)), "few": list(range(50, 100))}
    acc = DepthMetrics(shots)
    acc.update(pred, target, mask)
    res = acc.compute()
    p, t = pred[mask], target[mask]
    for name, bins in [("overall", range(N_BINS))] + list(shots.items()):
        ref = _naive(p, t, set(bins))
        for k, v in ref.items():
            assert res[name][k] == pytest.approx(v, rel=1e-10), (name, k)
    # Balanced: mean over non-empty bins of per-bin means; bRMSE = sqrt(mean of per-bin MSE).
    per_bin_mse, per_bin_mae = {}, {}
    for o, tt in zip(np.maximum(p, EPS), t, strict=True):
        b = min(int(tt * 10), 99)
        per_bin_mse.setdefault(b, []).append((o - tt) ** 2)
        per_bin_mae.setdefault(b, []).append(abs(o - tt))
    brmse = math.sqrt(np.mean([np.mean(v) for v in per_bin_mse.values()]))
    bmae = np.mean([np.mean(v) for v in per_bin_mae.values()])
    assert res["balanced"]["overall"]["rmse"] == pytest.approx(brmse, rel=1e-10)
    assert res["balanced"]["overall"]["mae"] == pytest.approx(bmae, rel=1e-10)
    assert res["pixels"]["overall"] == mask.sum()


def test_streaming_equals_one_call(scene):
    pred, target, mask = scene
    shots = {"many": list(range(7, 50)), "medium": [], "few": list(range(50, 100))}
    one, two = DepthMetrics(shots), DepthMetrics(shots)
    one.update(pred, target, mask)
    for i in range(3):
        two.update(pred[i], target[i], mask[i])
    a, b = one.compute(), two.compute()
    assert a["overall"] == pytest.approx(b["overall"])
    assert a["medium"] is None and a["balanced"]["medium"] is None  # an empty shot does not crash


def test_table_layout():
    res = {
        "overall": {"rmse": 1.0, "delta1": 0.5},
        "many": {"rmse": 0.5, "delta1": 0.7},
        "medium": None,
        "few": {"rmse": 2.0, "delta1": 0.1},
    }
    text = table2_markdown({"MSE": res})
    assert "| MSE | 1.000 | 0.500 | – | 2.000 | 0.500 | 0.700 | – | 0.100 |" in text
