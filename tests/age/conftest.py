"""A tiny demo dataset and a one-epoch vanilla run, shared by the age tests (session scope)."""

from __future__ import annotations

from pathlib import Path

import pytest


def tiny_config(tmp, csv, **kw):
    from ihmr.age.config import AgeConfig
    from ihmr.config import from_dict, to_dict

    cfg = to_dict(AgeConfig())
    cfg.update(
        stage="vanilla", out=str(tmp / "vanilla"), device="cpu", progress=False, tensorboard=False
    )
    # data.root is the demo's folder; data.csv is read from it (the config path rule)
    cfg["data"].update(root=str(Path(csv).parent), csv=Path(csv).name, img_size=16, workers=0)
    cfg["model"].update(backbone="small", width=4)
    if kw.get("stage") == "rrt":  # the stage-2 recipe: BMC, Adam 1e-4 constant, batch 256
        cfg["loss"].update(kind="bmc")
        cfg["optim"].update(lr=1e-4, epochs=10, milestones=[], batch_size=256)
    else:
        cfg["optim"].update(epochs=2, milestones=[1], batch_size=64)
    for k, v in kw.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) else v
    return from_dict(AgeConfig, cfg)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    from ihmr.age.demo import extract_features_to
    from ihmr.age.demo_data import make_demo
    from ihmr.age.train import train

    tmp = tmp_path_factory.mktemp("age")
    s = make_demo(tmp / "data", total=400, size=16, cap=3)
    cfg = tiny_config(tmp, s["csv"])
    best = train(cfg, log=lambda m: None).checkpoint
    feats = extract_features_to(best, tmp / "features.npz", device="cpu")
    return {"tmp": tmp, "csv": s["csv"], "vanilla": best, "features": feats, "cfg": cfg}
