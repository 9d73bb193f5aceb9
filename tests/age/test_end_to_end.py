"""A tiny end-to-end run: demo data -> vanilla -> features -> BNI -> eval; and the CLI shells."""

from __future__ import annotations

import json

import pytest

from ihmr.age.evaluate import evaluate_age_checkpoint
from ihmr.age.train import train

from .conftest import tiny_config


def naive_metrics(best, features, split="test"):
    """Test-split metrics of ``best`` by hand: predictions of its linear head on the cached
    features, then for each selection (all / many / medium / few by training count per integer
    age, DIR thresholds 100 and 20): plain MAE, and bMAE = mean over the ages present of the
    per-age MAE. None for a selection without test samples."""
    import numpy as np
    import torch

    ck = torch.load(best, weights_only=True)
    z = np.load(features)
    x, y = z[f"{split}_x"].astype(np.float64), z[f"{split}_y"].astype(np.float64)
    w, b = (ck["model"][k].double().numpy() for k in ("linear.weight", "linear.bias"))
    err = np.abs(x @ w.T + b - y[:, None])[:, 0]
    counts = ck["train_counts"].numpy()
    shot = {
        a: "many" if counts[a] > 100 else "few" if counts[a] < 20 else "medium"
        for a in range(len(counts))
    }
    ages = np.floor(y).astype(int)
    out = {}
    for name in ("overall", "many", "medium", "few"):
        sel = [i for i in range(len(y)) if name == "overall" or shot[ages[i]] == name]
        if not sel:
            out[name] = {"l1": None, "bmae": None}
            continue
        per_age = [np.mean([err[i] for i in sel if ages[i] == a]) for a in sorted(set(ages[sel]))]
        out[name] = {"l1": float(np.mean(err[sel])), "bmae": float(np.mean(per_age))}
    return out


def check_against_naive(metrics, best, features):
    want = naive_metrics(best, features)
    for shot, w in want.items():
        for key, v in w.items():
            got = metrics[shot][key]
            assert (got is None) if v is None else got == pytest.approx(v, rel=1e-4), (shot, key)
    # the tiny demo has < 20 training images per age: every test age is few-shot, the other
    # shots are empty (None), which is checked above too
    assert want["overall"]["l1"] is not None and want["few"]["l1"] is not None


def test_end_to_end_outputs(tiny_run):
    tmp = tiny_run["tmp"]
    cfg = tiny_config(
        tmp,
        tiny_run["csv"],
        stage="rrt",
        out=str(tmp / "bni"),
        rrt={"pretrained": str(tiny_run["vanilla"]), "features": str(tiny_run["features"])},
        loss={"kind": "bni", "lds": True},
        optim={"epochs": 2, "lr": 1e-2},
    )
    best = train(cfg, log=lambda m: None).checkpoint
    rows = [json.loads(x) for x in (tmp / "bni" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(
        "sigma" in r and "val_bmae" in r for r in rows
    )
    res = evaluate_age_checkpoint(
        best,
        tmp / "eval",
        features=str(tiny_run["features"]),
        vanilla=tiny_run["vanilla"],
        device="cpu",
    )
    m = json.loads((tmp / "eval" / "metrics.json").read_text())
    assert set(m["metrics"]) == {"Vanilla", "BNI + LDS"}
    check_against_naive(m["metrics"]["BNI + LDS"], best, tiny_run["features"])
    check_against_naive(m["metrics"]["Vanilla"], tiny_run["vanilla"], tiny_run["features"])
    assert (tmp / "eval" / "gain.png").stat().st_size > 1000
    lines = (tmp / "eval" / "per_sample.csv").read_text().splitlines()
    assert (
        lines[0] == "path,age,pred,abs_err" and len(lines) - 1 == res["metrics"]["overall"]["count"]
    )
    assert "| BNI + LDS |" in (tmp / "eval" / "table.md").read_text()
    # evaluating from the images gives the same numbers as from the cached features
    img = evaluate_age_checkpoint(best, tmp / "eval_img", device="cpu")
    assert img["metrics"]["overall"]["bmae"] == pytest.approx(
        res["metrics"]["overall"]["bmae"], rel=1e-4
    )


def test_cli_eval_and_bad_config(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from ihmr.cli import _register, app

    _register()
    r = CliRunner().invoke(
        app,
        [
            "age",
            "eval",
            str(tiny_run["vanilla"]),
            "--out",
            str(tmp_path / "e"),
            "--features",
            str(tiny_run["features"]),
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    check_against_naive(m["metrics"]["Vanilla"], tiny_run["vanilla"], tiny_run["features"])
    assert f"| Vanilla | {m['metrics']['Vanilla']['overall']['bmae']:.3f} |" in r.output
    r = CliRunner().invoke(app, ["age", "train", "--set", "loss.knd=bmc"])
    assert r.exit_code != 0 and "did you mean 'kind'" in str(r.exception)


def test_features_from_other_model_rejected(tiny_run, tmp_path):
    import numpy as np

    from ihmr.age.features import load_features
    from ihmr.errors import DataError

    with pytest.raises(DataError, match="re-extract"):
        load_features(tiny_run["features"], {"backbone": "0" * 16})
    assert np.isfinite(load_features(tiny_run["features"])["train"]["x"].numpy()).all()


def test_generic_eval_routes_age_checkpoints(tiny_run, tmp_path):
    """`ihmr eval --checkpoint best.pt` recognises an age checkpoint and writes the age report."""
    from typer.testing import CliRunner

    from ihmr.cli import _register, app

    _register()
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(tiny_run["vanilla"]),
            "--out",
            str(tmp_path / "g"),
            "--features",
            str(tiny_run["features"]),
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "g" / "metrics.json").read_text())
    check_against_naive(m["metrics"]["Vanilla"], tiny_run["vanilla"], tiny_run["features"])
    bmae = m["metrics"]["Vanilla"]["overall"]["bmae"]
    assert f"| Vanilla | {bmae:.3f} |" in (tmp_path / "g" / "table.md").read_text()
    r = CliRunner().invoke(app, ["eval", "--out", str(tmp_path / "h")])
    assert r.exit_code != 0 and "--labels" in str(r.exception)
