"""`ihmr tune-sigma` on a tiny depth config: candidates fine-tune the MSE start, scored on val."""

import json

import pytest

pytest.importorskip("cv2")


@pytest.mark.slow
def test_tune_sigma_depth(tmp_path):
    from ihmr.config import load_config, save_config
    from ihmr.depth.demo_data import make_demo_dataset
    from ihmr.depth.train import DepthTrainConfig
    from ihmr.runs import read_checkpoint
    from ihmr.sigma.tasks import tune

    root = tmp_path / "nyud2"
    try:
        make_demo_dataset(root, train_scenes=3, test_scenes=1, views=2, per_bin=50)
    except Exception as exc:  # noqa: BLE001 - no offscreen OpenGL on this machine
        pytest.skip(f"pyrender cannot render here: {exc}")
    sets = [f"data.root={root}", f"out={tmp_path / 'bni'}", "data.input_wh=[64, 48]",
            "data.val_fraction=0.3", "model.width=0.125", "model.encoder_width=0.125",
            "model.encoder_layers=[1, 1, 1, 1]", "optim.batch_size=2", "optim.epochs=2",
            "optim.max_steps_per_epoch=1", "loss.kind=bni", "data.prior_pixels_per_image=50",
            "threads=1"]
    path = save_config(load_config(DepthTrainConfig, None, sets), tmp_path / "bni.yaml")
    res = tune(path, grid=[0.3, 1.0], budget_epochs=1, out=tmp_path / "tune", log=lambda m: None)
    info = json.loads((tmp_path / "tune" / "search.json").read_text())
    assert info["task"] == "depth" and info["reused_model"] and info["full_epochs"] == 2
    for c in info["candidates"]:
        run = tmp_path / "tune" / "runs" / f"sigma_{c['sigma']:g}"
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == 1 and c["score"] == pytest.approx(rows[0]["val_brmse"])
        cfg = read_checkpoint(run / "best.pt")["extra"]["config"]
        assert cfg["loss"]["sigma"] == c["sigma"] and cfg["loss"]["learn_sigma"] is False
    assert res["search"].sigma in (0.3, 1.0)
