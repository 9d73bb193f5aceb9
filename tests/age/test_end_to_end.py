"""A tiny end-to-end run: demo data -> vanilla -> features -> BNI -> eval; and the CLI shells."""

from __future__ import annotations

import json
import math

import pytest

from ihmr.age.evaluate import evaluate_age_checkpoint
from ihmr.age.train import train

from .conftest import tiny_config


def test_end_to_end_outputs(tiny_run):
    tmp = tiny_run["tmp"]
    cfg = tiny_config(tmp, tiny_run["csv"], stage="rrt", out=str(tmp / "bni"),
                      rrt={"loss": "bni", "lds": True, "pretrained": str(tiny_run["vanilla"]),
                           "features": str(tiny_run["features"]), "epochs": 2, "lr": 1e-2})
    best = train(cfg, log=lambda m: None) / "best.pt"
    rows = [json.loads(x) for x in (tmp / "bni" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1] and all("sigma" in r and "val_bmae" in r for r in rows)
    res = evaluate_age_checkpoint(best, tmp / "eval", features=str(tiny_run["features"]),
                                  vanilla=tiny_run["vanilla"], device="cpu")
    m = json.loads((tmp / "eval" / "metrics.json").read_text())
    assert set(m["metrics"]) == {"Vanilla", "BNI + LDS"}
    for shot in ("overall", "many", "medium", "few"):
        v = m["metrics"]["BNI + LDS"][shot]["bmae"]
        assert v is None or math.isfinite(v)
    assert (tmp / "eval" / "gain.png").stat().st_size > 1000
    lines = (tmp / "eval" / "per_sample.csv").read_text().splitlines()
    assert lines[0] == "path,age,pred,abs_err" and len(lines) - 1 == res["metrics"]["overall"]["count"]
    assert "| BNI + LDS |" in (tmp / "eval" / "table.md").read_text()
    # evaluating from the images gives the same numbers as from the cached features
    img = evaluate_age_checkpoint(best, tmp / "eval_img", device="cpu")
    assert img["metrics"]["overall"]["bmae"] == pytest.approx(res["metrics"]["overall"]["bmae"], rel=1e-4)


def test_cli_eval_and_bad_config(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from ihmr.cli import _register, app

    _register()
    r = CliRunner().invoke(app, ["age", "eval", str(tiny_run["vanilla"]), "--out", str(tmp_path / "e"),
                                 "--features", str(tiny_run["features"]), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "e" / "metrics.json").is_file()
    r = CliRunner().invoke(app, ["age", "train", "--set", "rrt.los=bmc"])
    assert r.exit_code != 0 and "did you mean 'loss'" in str(r.exception)


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
    r = CliRunner().invoke(app, ["eval", "--checkpoint", str(tiny_run["vanilla"]), "--out",
                                 str(tmp_path / "g"), "--features", str(tiny_run["features"]),
                                 "--device", "cpu"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "g" / "metrics.json").read_text())
    assert "bmae" in json.dumps(m) and "| " in (tmp_path / "g" / "table.md").read_text()
    r = CliRunner().invoke(app, ["eval", "--out", str(tmp_path / "h")])
    assert r.exit_code != 0 and "--labels" in str(r.exception)
