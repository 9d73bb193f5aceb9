"""`ihmr tune-sigma`, tiny stage-2 age config: outputs, chosen config, warm start, no test set."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from ihmr.config import save_config

from .conftest import tiny_config


def _config(tiny_run, tmp_path, **loss):
    cfg = tiny_config(
        tiny_run["tmp"],
        tiny_run["csv"],
        stage="rrt",
        out=str(tmp_path / "bmc"),
        rrt={"pretrained": str(tiny_run["vanilla"]), "features": str(tiny_run["features"])},
        loss={"kind": "bmc", **loss},
        optim={"epochs": 2, "batch_size": 64, "lr": 1e-2},
    )
    return save_config(cfg, tmp_path / "bmc.yaml")


def test_tune_sigma_age_writes_table_plot_and_chosen_config(tiny_run, tmp_path, monkeypatch):
    import ihmr.age.features as F
    from ihmr.age.train import load_age_checkpoint
    from ihmr.sigma.tasks import tune

    seen_splits = []
    orig = F.load_features

    def spy(path, expect, splits):
        seen_splits.append(tuple(splits))
        return orig(path, expect, splits)

    monkeypatch.setattr("ihmr.age.features.load_features", spy)
    path = _config(tiny_run, tmp_path, learn_noise=True)
    res = tune(path, grid=[0.5, 4.0], budget_epochs=1, out=tmp_path / "tune", log=lambda m: None)
    out = tmp_path / "tune"
    info = json.loads((out / "search.json").read_text())
    assert info["task"] == "age" and info["reused_model"] is True
    assert {c["sigma"] for c in info["candidates"]} == {0.5, 4.0}
    # every score is the candidate run's own best validation bMAE
    for c in info["candidates"]:
        _, best = load_age_checkpoint(out / "runs" / f"sigma_{c['sigma']:g}" / "best.pt")
        assert c["score"] == pytest.approx(best["val"]["overall"]["bmae"])
        assert best["config"]["loss"]["learn_noise"] is False
        assert best["config"]["loss"]["init_noise_sigma"] == c["sigma"]
        assert best["config"]["optim"]["epochs"] == 1
    assert info["sigma"] == min(info["candidates"], key=lambda c: c["score"])["sigma"]
    assert info["learned"] is not None and info["learned"]["sigma"] > 0
    _, mse = load_age_checkpoint(out / "runs" / "mse_start" / "best.pt")
    assert info["mse_start_score"] == pytest.approx(mse["val"]["overall"]["bmae"])
    assert mse["config"]["loss"]["kind"] == "mse" and mse["config"]["optim"]["epochs"] == 2
    chosen = yaml.safe_load((out / "chosen.yaml").read_text())
    assert chosen["loss"]["init_noise_sigma"] == info["sigma"] and not chosen["loss"]["learn_noise"]
    assert (out / "curve.png").stat().st_size > 1000 and (out / "table.csv").is_file()
    assert all("test" not in s for s in seen_splits)  # nothing is ever read from the test split
    assert res["search"].sigma == info["sigma"]


def _main(monkeypatch, capsys, *args):
    from ihmr.cli import main

    monkeypatch.setattr(sys, "argv", ["ihmr", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


def test_tune_sigma_cli_bad_input(tiny_run, tmp_path, monkeypatch, capsys):
    path = _config(tiny_run, tmp_path)
    code, err = _main(monkeypatch, capsys, "tune-sigma", path, "--grid", ",")
    assert code == 2 and "sigma grid is empty" in err
    code, err = _main(monkeypatch, capsys, "tune-sigma", path, "--grid", "0.5,-1")
    assert code == 2 and "sigma must be a finite number > 0, got -1" in err
    code, err = _main(monkeypatch, capsys, "tune-sigma", path, "--grid", "a,b")
    assert code == 2 and "comma-separated numbers" in err
    code, err = _main(monkeypatch, capsys, "tune-sigma", path, "--set", "loss.kind=mse")
    assert code == 2 and "Balanced MSE loss" in err
    assert not (tmp_path / "bmc_tune_sigma").exists()  # refused before any folder was made
