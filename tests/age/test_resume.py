"""Age training killed after an epoch and resumed equals the uninterrupted run; a NaN loss stops
training naming where, and keeps the last good checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ihmr.age.train import train
from ihmr.runs import NonFiniteLossError, RunDir, read_checkpoint

from .conftest import tiny_config


def _cfg(tiny_run, out, stage):
    if stage == "vanilla":
        return tiny_config(tiny_run["tmp"], tiny_run["csv"], out=str(out), optim={"epochs": 2})
    return tiny_config(
        tiny_run["tmp"],
        tiny_run["csv"],
        stage="rrt",
        out=str(out),
        rrt={"pretrained": str(tiny_run["vanilla"]), "features": str(tiny_run["features"])},
        loss={"kind": "bmc"},
        optim={"epochs": 3, "batch_size": 32, "lr": 1e-2},
    )


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stage", ["vanilla", "rrt"])
def test_resume_after_kill_equals_uninterrupted(tiny_run, tmp_path, monkeypatch, stage):
    full = train(_cfg(tiny_run, tmp_path / "full", stage), log=lambda m: None)

    save = RunDir.save

    def save_then_die(self, *a, **k):
        save(self, *a, **k)
        raise KeyboardInterrupt  # killed right after epoch 1's checkpoint

    monkeypatch.setattr(RunDir, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_run, tmp_path / "killed", stage), log=lambda m: None)
    monkeypatch.setattr(RunDir, "save", save)
    assert len(_rows(tmp_path / "killed")) == 1
    resumed = train(_cfg(tiny_run, tmp_path / "killed", stage), resume=True, log=lambda m: None)

    assert _rows(resumed.run_dir) == _rows(full.run_dir)
    assert len(_rows(full.run_dir)) == (2 if stage == "vanilla" else 3)
    a = torch.load(full.run_dir / "last.pt", weights_only=True)["state"]
    b = torch.load(resumed.run_dir / "last.pt", weights_only=True)["state"]
    assert a.keys() == b.keys()
    for part in a:
        for k, v in a[part].items():
            if torch.is_tensor(v):
                torch.testing.assert_close(b[part][k], v, rtol=0, atol=0)
    if stage == "rrt":  # sigma was learned, and resumed
        assert float(a["criterion"]["inner.noise_sigma"]) != pytest.approx(10.0, abs=1e-4)


def test_nan_loss_stops_with_location_and_keeps_last_checkpoint(tiny_run, tmp_path, monkeypatch):
    import ihmr.age.train as T

    forward, calls = T._Head.forward, []

    def poisoned(self, *a, **k):
        calls.append(1)
        loss = forward(self, *a, **k)
        return loss * float("nan") if len(calls) > n_batches else loss  # epoch 2's first batch

    n_batches = -(-len(np.load(tiny_run["features"])["train_y"]) // 32)  # batch_size 32
    monkeypatch.setattr(T._Head, "forward", poisoned)
    with pytest.raises(
        NonFiniteLossError, match=rf"epoch 2, global step {n_batches + 1}, batch 0.*last\.pt"
    ):
        train(_cfg(tiny_run, tmp_path / "run", "rrt"), log=lambda m: None)
    ck = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["epoch"] == 1  # the last good checkpoint is intact
    assert all(torch.isfinite(v).all() for v in ck["state"]["linear"].values())


def test_age_train_resume_rule(tiny_run, tmp_path, resume_rule):
    """`ihmr age train` follows the resume rule shared with `ihmr train` and `ihmr depth train`."""
    from ihmr.config import save_config

    cfg = _cfg(tiny_run, tmp_path / "unused", "rrt")
    cfg.optim.epochs = 1
    resume_rule(("age", "train"), save_config(cfg, tmp_path / "cfg.yaml"), tmp_path / "run", 1)
