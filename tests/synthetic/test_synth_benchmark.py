"""A reduced run of the benchmark's claims, the records and the report files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ihmr.errors import ConfigError
from ihmr.synthetic import SynthConfig, check_ordering, run_benchmark, summarize, write_outputs
from ihmr.synthetic import spec as S


@pytest.fixture(scope="module")
def reduced():
    # Reduced for test time: High skew of Normal and Exponential only, 2 seeds, 400 of the
    # protocol's 2000 epochs (same lr, batch, optimiser; the cosine period follows the epochs).
    cfg = SynthConfig(
        distributions=("normal", "exponential"),
        skews=("high",),
        seeds=2,
        nonlinear=False,
        epochs_1d=400,
    )
    return run_benchmark(cfg)


@pytest.mark.slow
def test_reduced_run_orders_methods(reduced):
    summary = summarize(reduced.records)
    for dist in ("normal", "exponential"):
        m = {meth: summary[(dist, "high", meth)][0] for meth in S.METHODS}
        for bal in ("gai_true", "bmc_true", "gai", "bmc"):
            assert m[bal] < m["reweight"], (dist, bal, m)
        assert m["reweight"] < m["vanilla"], (dist, m)
        assert m["gai_true"] < 0.25 and m["bmc_true"] < 0.25, (dist, m)
        # learned sigma converges more slowly than the reduced run lasts: factor 10 here
        assert m["gai"] < 10 * m["gai_true"] + 0.05 and m["bmc"] < 10 * m["bmc_true"] + 0.05
    # Vanilla's least-squares limit on Normal High is 5.33 (paper 5.52); at 400 epochs it is
    # on its way there from the initial line: well above the balanced methods.
    assert summary[("normal", "high", "vanilla")][0] > 0.5


def test_records_schema_and_selection(reduced):
    recs = reduced.records
    assert len(recs) == 2 * 1 * 6 * 2
    for r in recs:
        assert r["distribution"] in S.DISTRIBUTIONS and r["skew"] in S.SKEWS
        assert r["method"] in S.METHODS and r["seed"] in (0, 1)
        assert np.isfinite(r["test_mse"]) and r["test_mse"] >= 0
        assert 201 <= r["selected_epoch"] <= 400  # selection over the second half
        if r["method"] in ("gai_true", "bmc_true"):
            assert r["sigma"] == pytest.approx(S.NOISE_SIGMA)
        if r["method"] in ("gai", "bmc"):
            assert r["last_sigma"] != pytest.approx(S.LEARNED_SIGMA_INIT)
        # the stored line reproduces the test MSE on the regenerated test set
        from ihmr.synthetic.data import make_dataset

        d = make_dataset(r["distribution"], r["skew"], r["seed"], S.PROTOCOL_1D)
        pred = d.x_test[:, 0] * r["weight"][0][0] + r["bias"][0]
        assert np.mean((pred - d.y_test[:, 0]) ** 2) == pytest.approx(r["test_mse"], rel=1e-5)


def test_write_outputs(reduced, tmp_path):
    paths = write_outputs(reduced, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert {
        "results.json",
        "results.csv",
        "table.md",
        "run.json",
        "fig2_linear_1d.png",
        "fig7_seeds.png",
    } <= set(names)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names  # no staging left
    recs = json.loads((tmp_path / "out" / "results.json").read_text())
    assert recs == json.loads(json.dumps(reduced.records))
    csv_lines = (tmp_path / "out" / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == len(recs) + 1 and csv_lines[0].startswith("distribution,skew")
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| Vanilla |" in table and "*5.521*" in table and "*18.61*" in table
    for p in paths:
        if p.suffix == ".png":
            assert p.stat().st_size < 400_000


def test_failed_write_leaves_nothing(reduced, tmp_path, monkeypatch):
    import ihmr.synthetic.plots as plots

    def boom(*a, **k):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(plots, "save_figures", boom)
    out = tmp_path / "o"
    with pytest.raises(RuntimeError):
        write_outputs(reduced, out)
    assert list(out.iterdir()) == []


def test_check_ordering_flags_violations():
    summary = {
        ("normal", "high", m): (v, 0.0, 5)
        for m, v in {
            "vanilla": 5.0,
            "reweight": 1.0,
            "gai_true": 0.03,
            "bmc_true": 0.3,
            "gai": 0.05,
            "bmc": 2.0,
        }.items()
    }
    ((setting, ok, detail),) = check_ordering(summary)
    assert setting == "normal/high" and not ok
    assert "bmc_true 0.3 >= 0.25" in detail and "bmc 2 >= reweight 1" in detail
    assert "gai " not in detail


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"distributions": ("normall",)}, "did you mean 'normal'"),
        ({"skews": ("hgh",)}, "did you mean 'high'"),
        ({"methods": ("bmc_tru",)}, "did you mean 'bmc_true'"),
        ({"seeds": 0}, "seeds must be an integer >= 1"),
        ({"select_after": 1.0}, "select_after"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SynthConfig(**kwargs).validate()


def test_config_canonical_order():
    cfg = SynthConfig(methods=("bmc", "vanilla"), distributions=("mvn", "normal")).validate()
    assert cfg.methods == ("vanilla", "bmc") and cfg.distributions == ("normal", "mvn")
    assert isinstance(ConfigError("x"), ValueError)
