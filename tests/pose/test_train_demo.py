"""The demo configs, the side-by-side table and the `ihmr train` command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ihmr.config import load_config, to_dict
from ihmr.pose.config import PoseTrainConfig
from ihmr.pose.demo import demo_config, side_by_side

from .test_train import config, data  # noqa: F401  (module fixture)

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "ihmr"


@pytest.mark.parametrize("kind", ["mse", "gai", "bmc", "gai_kp", "bmc_kp"])
def test_demo_yaml_equals_demo_config(kind):
    from_yaml = load_config(PoseTrainConfig, CONFIGS / f"demo_{kind}.yaml")
    assert to_dict(from_yaml) == to_dict(demo_config(kind))


@pytest.mark.parametrize("kind", ["mse", "gai", "bmc", "bmc_mmhuman3d"])
def test_released_configs_hold_the_released_recipe(kind):
    cfg = load_config(PoseTrainConfig, CONFIGS / f"{kind}.yaml")
    mix = {d.name: d.weight for d in cfg.data.train}
    assert mix == {
        "h36m": 0.35,
        "mpi_inf_3dhp": 0.15,
        "lsp": 0.1,
        "lspet": 0.1,
        "mpii": 0.1,
        "coco": 0.2,
    }
    assert all(d.fits for d in cfg.data.train)  # static fits as pseudo ground truth
    o, lo = cfg.optim, cfg.loss
    assert (o.epochs, o.batch_size, o.lr, o.sigma_lr, o.grad_clip) == (20, 128, 1e-4, 1e-2, 35)
    assert (
        lo.kind,
        lo.pose_weight,
        lo.betas_weight,
        lo.keypoints3d_weight,
        lo.keypoints2d_weight,
        lo.openpose_weight,
        lo.cam_weight,
    ) == (kind, 60, 0.06, 300, 300, 0, 60)
    assert (lo.prior is not None) == (kind == "gai")


def test_side_by_side_marks_the_best_value():
    def m(x):
        part = {"all": x, "tail10": x + 1, "tail5": x + 2}
        return {
            "bMPVPE": part,
            "bMPJPE": part,
            "bPA-MPJPE": part,
            "MPVPE": x,
            "MPJPE": x,
            "PA-MPJPE": x,
        }

    table = side_by_side({"MSE": m(10.0), "BMC": m(9.5)})
    assert "| bMPVPE tail 10% | 11.00 | **10.50** |" in table
    assert table.count("\n") == 2 + 9 + 3


def _metrics(x, plain=100.0):
    part = {"all": x, "tail10": x + 10, "tail5": x + 20}
    return {
        "bMPVPE": part,
        "bMPJPE": dict(part),
        "bPA-MPJPE": dict(part),
        "MPVPE": plain,
        "MPJPE": plain,
        "PA-MPJPE": plain,
    }


def test_verdict_is_computed_from_the_numbers():
    from ihmr.pose.demo import verdict

    mse, better, worse = _metrics(100.0), _metrics(90.0, 104.0), _metrics(110.0)
    said = verdict({"mse": mse, "gai": better, "gai_kp": better})
    assert said.startswith("Balanced MSE beat MSE on every balanced metric in every run")
    assert (
        "GAI (pose): below MSE on 9 of 9 balanced metrics; bMPVPE all -10.0 mm, tail 5% "
        "-10.0 mm (-8%); plain MPVPE +4.0 mm" in said
    )
    said = verdict({"mse": mse, "gai": better, "bmc": worse})
    assert said.startswith("Balanced MSE beat MSE on every balanced metric with GAI (pose); not")
    assert "BMC (pose): below MSE on 0 of 9" in said
    assert verdict({"mse": mse, "bmc": worse}).startswith("Balanced MSE did not beat MSE")
    mixed = _metrics(90.0)
    mixed["bPA-MPJPE"]["tail5"] = 200.0
    assert verdict({"mse": mse, "gai": mixed}).startswith("Mixed")


def test_cli_train_then_resume(data, tmp_path):  # noqa: F811
    from typer.testing import CliRunner

    from ihmr.cli import _register, app
    from ihmr.config import save_config

    _register()
    cfg = config(data, tmp_path / "unused", kind="mse")
    cfg.optim.epochs = 1
    save_config(cfg, tmp_path / "cfg.yaml")
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"run folder: {out}" in res.output and (out / "head.pt").is_file()
    # extend the finished run by one epoch: --resume reads its config.yaml, --set overrides it
    res = runner.invoke(app, ["train", "--resume", str(out), "--set", "optim.epochs=2"])
    assert res.exit_code == 0, res.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert re.search(r"trained mse for 2 epochs", res.output)


def test_train_resume_rule(data, tmp_path, resume_rule):  # noqa: F811
    """`ihmr train` follows the resume rule shared with `ihmr age train` and `ihmr depth train`."""
    from ihmr.config import save_config

    cfg = config(data, tmp_path / "unused", kind="mse")
    cfg.optim.epochs = 1
    resume_rule(("train",), save_config(cfg, tmp_path / "cfg.yaml"), tmp_path / "run", 1)


def _write_meta(root, **changes):
    import dataclasses
    import json

    from ihmr.pose.demo_data import DemoConfig

    root.mkdir(parents=True, exist_ok=True)
    cfg = {**dataclasses.asdict(DemoConfig()), **changes}
    (root / "demo.json").write_text(json.dumps({"config": cfg}))


@pytest.mark.parametrize("case", ["current", "custom"])
def test_demo_data_with_other_settings_is_used_with_a_note(tmp_path, monkeypatch, case):
    import ihmr.pose.demo_data as demo_data
    from ihmr.pose.demo import ensure_demo_data

    made = []
    monkeypatch.setattr(demo_data, "make_demo", lambda root: made.append(root) or {"new": 1})
    _write_meta(tmp_path, **({"joint_noise": 0.01} if case == "custom" else {}))
    said = []
    meta = ensure_demo_data(tmp_path, said.append)
    assert made == [] and meta["config"]["joint_noise"] == (0.01 if case == "custom" else 0.0)
    if case == "custom":
        assert "joint_noise 0.01 (default 0.0)" in said[0] and "delete the folder" in said[0]
    else:
        assert said == []
    ensure_demo_data(tmp_path / "absent", said.append)  # no data yet: generated
    assert made == [tmp_path / "absent"]


def test_prior_split_and_runs_older_than_the_data_are_not_reused(tmp_path):
    import os

    from ihmr.pose.demo import _older_than_data, _set_aside_if_stale

    _write_meta(tmp_path)
    run = tmp_path / "runs" / "mse"
    run.mkdir(parents=True)
    (run / "head.pt").write_bytes(b"x")
    prior = tmp_path / "prior_rotmat_k16.npz"
    prior.write_bytes(b"x")
    said = []
    _set_aside_if_stale(run, tmp_path, said.append)  # written after the data: kept
    assert run.is_dir() and not _older_than_data(prior, tmp_path) and said == []
    t = (tmp_path / "demo.json").stat().st_mtime
    for p in (run / "head.pt", prior):
        os.utime(p, (t - 60, t - 60))  # the data was regenerated a minute later
    assert _older_than_data(prior, tmp_path)
    _set_aside_if_stale(run, tmp_path, said.append)
    assert not run.exists() and (tmp_path / "runs" / "mse.stale" / "head.pt").is_file()
    assert "earlier generation" in said[0]
