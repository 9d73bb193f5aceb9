"""BalancedRegressionMetric vs an independent NumPy loop, in batches, and under two gloo ranks."""

from __future__ import annotations

import datetime
import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from ihmr.errors import ConfigError, DataError, ShapeError
from ihmr.metrics import regression as R

CLASSES = [R.PlainBalancedRegressionMetric]
if R.has_torchmetrics():
    CLASSES.append(R.BalancedRegressionMetric)


def naive(pred, target, edges, train=None, center=None, tails=()):
    """Loop over bins by hand: per-bin mean of |e| and e^2 (element means over dims)."""
    p = np.asarray(pred, float).reshape(len(pred), -1)
    y = np.asarray(target, float).reshape(len(target), -1)
    val = y[:, 0] if center is None else np.sqrt(((y - center) ** 2).sum(1))
    nb = len(edges) - 1

    def bin_of(v):
        for i in range(nb):
            if edges[i] <= v < edges[i + 1]:
                return i
        return 0 if v < edges[0] else nb - 1

    b = np.array([bin_of(v) for v in val])
    a = np.abs(p - y).mean(1)
    s = ((p - y) ** 2).mean(1)

    def six(sel_bins):
        mae_b, mse_b, n = [], [], 0
        for i in sel_bins:
            m = b == i
            if m.sum():
                mae_b.append(a[m].mean())
                mse_b.append(s[m].mean())
                n += m.sum()
        if not mae_b:
            return None
        inb = np.isin(b, list(sel_bins))
        return {
            "bmae": np.mean(mae_b),
            "bmse": np.mean(mse_b),
            "brmse": math.sqrt(np.mean(mse_b)),
            "mae": a[inb].mean(),
            "mse": s[inb].mean(),
            "rmse": math.sqrt(s[inb].mean()),
        }

    out = {"all": six(range(nb))}
    if train is not None:
        t = np.asarray(train, float).reshape(len(train), -1)
        tv = t[:, 0] if center is None else np.sqrt(((t - center) ** 2).sum(1))
        tc = np.bincount([bin_of(v) for v in tv], minlength=nb)
        out["many"] = six([i for i in range(nb) if tc[i] > 100])
        out["few"] = six([i for i in range(nb) if tc[i] < 20])
        out["medium"] = six([i for i in range(nb) if 20 <= tc[i] <= 100])
        c = t.mean(0) if center is None else center
        dist = np.sqrt(((y - c) ** 2).sum(1))
        for k in tails:
            kk = int(len(y) * k / 100)
            idx = sorted(range(len(y)), key=lambda i: -dist[i])[:kk]
            out[f"tail{k:g}"] = {"mae": a[idx].mean(), "mse": s[idx].mean()}
    return out


def _close(got: dict, want: dict | None):
    if want is None:
        assert got["bmae"] is None and got["mae"] is None
        return
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k


@pytest.mark.parametrize("cls", CLASSES)
def test_1d_batches_equal_naive_with_empty_and_single_bins(cls):
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.uniform(0, 1, 300), rng.uniform(1, 2, 50), rng.uniform(3, 4, 5)])
    # bin [2, 3) empty, bin [4, 5) holds exactly one test sample, one value beyond the last edge
    y = np.concatenate([rng.uniform(0, 2, 40), rng.uniform(3, 4, 6), [4.5], [7.0]])
    p = y + rng.normal(0, 0.3, len(y))
    edges = np.array([0.0, 1, 2, 3, 4, 5])
    m = cls(edges, train_targets=train, tails=(10, 5))
    for part in np.array_split(np.arange(len(y)), 3):
        m.update(torch.tensor(p[part]), torch.tensor(y[part]))
    got, want = m.compute(), naive(p, y, edges, train, tails=(10, 5))
    _close(got, want["all"])
    assert got["bins"] == 4 and got["n"] == len(y)  # bins 0, 1, 3, 4 (7.0 clipped into bin 4)
    for shot in ("many", "medium", "few"):
        _close(got[shot], want[shot])
    for k in ("tail10", "tail5"):
        assert got[k]["mae"] == pytest.approx(want[k]["mae"], rel=1e-12)
        assert got[k]["mse"] == pytest.approx(want[k]["mse"], rel=1e-12)
    # the one-sample bin's mean is that sample's error; empty bins do not enter the mean
    assert got["few"]["n"] == 8  # bins 2 (empty), 3 and 4 have < 20 training samples
    m.reset()
    m.update(p[-2:-1], y[-2:-1])
    assert m.compute()["bmae"] == pytest.approx(abs(p[-2] - y[-2]))


@pytest.mark.parametrize("cls", CLASSES)
def test_ddim_regions_of_distance(cls):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(80, 3)) * np.array([1.0, 2.0, 0.5])
    p = y + rng.normal(0, 0.2, y.shape)
    center = np.zeros(3)
    edges = np.linspace(0, 4, 9)
    m = cls(edges, center=center, train_targets=y, tails=(10,))
    m.update(p, y)
    got, want = m.compute(), naive(p, y, edges, y, center, tails=(10,))
    _close(got, want["all"])
    assert got["tail10"]["mse"] == pytest.approx(want["tail10"]["mse"], rel=1e-12)
    uni = cls(n_bins=8, range=(0, 4), center=center)
    uni.update(p, y)
    assert uni.compute()["bmse"] == pytest.approx(got["bmse"], rel=1e-12)


def test_functional_form_equals_naive():
    rng = np.random.default_rng(3)
    y = rng.exponential(1.0, 200)
    p = y + rng.normal(0, 0.4, len(y))
    edges = np.linspace(0, 5, 11)
    got = R.balanced_regression(torch.tensor(p), torch.tensor(y), bins=edges, train_targets=y)
    want = naive(p, y, edges, y)
    _close(got, want["all"])
    for shot in ("many", "medium", "few"):
        _close(got[shot], want[shot])


def test_same_results_as_age_report():
    from ihmr.age.metrics import AgeMetrics, age_bins

    rng = np.random.default_rng(2)
    train = np.floor(rng.gamma(4, 8, 2000)).clip(0, 99)
    y = np.floor(rng.uniform(0, 100, 300))
    p = y + rng.normal(0, 5, 300)
    rep = AgeMetrics(train, n_bins=120)
    rep.update(p, y)
    want = rep.compute()
    m = R.PlainBalancedRegressionMetric(
        n_bins=120, binner=lambda v: age_bins(v, 120), train_targets=train
    )
    m.update(p, y)
    got = m.compute()
    assert got["bmae"] == pytest.approx(want["overall"]["bmae"], rel=1e-12)
    assert got["bmse"] == pytest.approx(want["overall"]["bmse"], rel=1e-12)
    for shot in ("many", "medium", "few"):
        assert got[shot]["n"] == want[shot]["count"]
        if want[shot]["count"]:
            assert got[shot]["bmae"] == pytest.approx(want[shot]["bmae"], rel=1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_input_is_refused(cls):
    m = cls([0.0, 1.0, 2.0])
    with pytest.raises(DataError, match="target holds 1 NaN"):
        m.update([0.5, 0.5], [0.2, float("nan")])
    with pytest.raises(DataError, match="pred holds"):
        m.update([float("inf")], [0.2])
    with pytest.raises(ShapeError, match="same shape"):
        m.update(np.zeros((3, 2)), np.zeros((3,)))
    with pytest.raises(ShapeError, match="need center"):
        m.update(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="strictly increasing"):
        cls([0.0, 0.0, 1.0])
    with pytest.raises(ConfigError, match="tails need center"):
        cls([0.0, 1.0], tails=(10,))
    assert m.compute()["bmae"] is None  # nothing seen: None, never NaN


def test_torchmetrics_subclass_when_installed():
    if not R.has_torchmetrics():
        pytest.skip("torchmetrics is not installed (optional extra ihmr[metrics])")
    import torchmetrics

    assert issubclass(R.BalancedRegressionMetric, torchmetrics.Metric)


# ------------------------------------------------------------------------------------------------
# two gloo ranks: each sees half of an uneven split; compute() must equal one process on all data


def _data():
    rng = np.random.default_rng(3)
    y = rng.exponential(1.0, (57, 2))
    return y + rng.normal(0, 0.3, y.shape), y


def _worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        p, y = _data()
        results = []
        for cls in CLASSES:  # both classes in one launch: spawning ranks is the slow part
            m = cls(np.linspace(0, 4, 7), center=np.zeros(2), train_targets=y[:30], tails=(10, 5))
            lo, hi = (0, 20) if rank == 0 else (20, 57)
            for part in np.array_split(np.arange(lo, hi), 2):
                m.update(torch.tensor(p[part]), torch.tensor(y[part]))
            results.append(m.compute())
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_equal_one_process(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    mp.spawn(_worker, args=(_port(), str(tmp_path)), nprocs=2, join=True)
    p, y = _data()
    one = R.PlainBalancedRegressionMetric(
        np.linspace(0, 4, 7), center=np.zeros(2), train_targets=y[:30], tails=(10, 5)
    )
    one.update(p, y)
    want = one.compute()
    for rank, cls in [(r, c) for r in range(2) for c in range(len(CLASSES))]:
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)[cls]
        assert got["n"] == 57
        for key in ("bmae", "bmse", "mae", "mse"):
            assert got[key] == pytest.approx(want[key], rel=1e-12)
        for block in ("many", "medium", "few", "tail10", "tail5"):
            for key, v in want[block].items():
                assert (
                    (got[block][key] is None)
                    if v is None
                    else got[block][key] == pytest.approx(v, rel=1e-12)
                ), (block, key)
