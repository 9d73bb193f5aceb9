"""Sigma search on a tiny pose config: held-out samples never trained on, outputs, warm start."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from ihmr.body.testing import write_smpl_folder

from .test_train import config, make_set


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune_data")
    make_set(root, "h36m_train", 96, 0)
    make_set(root, "coco_train", 48, 1)
    write_smpl_folder(root / "smpl", n_vertices=200)
    return root


def test_train_set_without_drops_exactly_the_held_out_samples(data):
    from ihmr.pose.train_data import load_train_set

    cfg = config(data, data / "unused")
    full = load_train_set(cfg.data.train, cfg.data.root)
    drop = np.array([0, 5, 95, 96, 143])  # both datasets, their first and last samples
    sub = full.without(drop)
    keep = np.setdiff1d(np.arange(144), drop)
    assert len(sub) == 139 and sub.counts == [93, 46] and sub.offsets == [0, 93]
    assert torch.equal(sub.features, full.features[keep])
    for k, v in full.labels.items():
        assert torch.equal(sub.labels[k], v[keep]), k


def test_tune_pose_holds_out_scores_and_writes(data, tmp_path, monkeypatch):
    import ihmr.pose.train as T
    from ihmr.sigma.pose import tune_pose

    calls = []
    orig = T.train

    def spy(cfg, **kw):
        res = orig(cfg, **kw)
        calls.append(
            (
                cfg.loss.kind,
                cfg.loss.init_noise_sigma,
                cfg.optim.epochs,
                kw["init_head"] is not None,
                res.info["samples"],
                cfg.eval.labels,
            )
        )
        return res

    monkeypatch.setattr(T, "train", spy)
    cfg = config(data, tmp_path / "run", kind="gai", optim__epochs=2)
    cfg.loss.kind, cfg.loss.learn_noise = "bmc", False
    res = tune_pose(cfg, tmp_path / "tune", [0.1, 1.0], budget_epochs=1, log=lambda m: None)
    held = json.loads((tmp_path / "tune" / "search.json").read_text())["validation_samples"]
    assert held >= 2
    # the MSE start runs the full schedule, each sigma fine-tunes it for 1 epoch, none sees the
    # held-out samples nor the test set
    assert calls[0] == ("mse", cfg.loss.init_noise_sigma, 2, False, 144 - held, "")
    assert calls[1:] == [
        ("bmc", 0.1, 1, True, 144 - held, ""),
        ("bmc", 1.0, 1, True, 144 - held, ""),
    ]
    s = res["search"]
    assert s.reused_model and s.sigma in (0.1, 1.0) and np.isfinite(s.score)
    chosen = yaml.safe_load((tmp_path / "tune" / "chosen.yaml").read_text())
    assert chosen["loss"]["init_noise_sigma"] == s.sigma and chosen["loss"]["learn_noise"] is False
    for name in ("table.md", "table.csv", "curve.png"):
        assert (tmp_path / "tune" / name).stat().st_size > 0
