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
    sets = [
        f"data.root={root}",
        f"out={tmp_path / 'bni'}",
        "data.input_wh=[64, 48]",
        "data.val_fraction=0.3",
        "model.width=0.125",
        "model.encoder_width=0.125",
        "model.encoder_layers=[1, 1, 1, 1]",
        "optim.batch_size=2",
        "optim.epochs=2",
        "optim.max_steps_per_epoch=1",
        "loss.kind=bni",
        "data.prior_pixels_per_image=50",
        "threads=1",
    ]
    path = save_config(load_config(DepthTrainConfig, None, sets), tmp_path / "bni.yaml")
    res = tune(path, grid=[0.3, 1.0], budget_epochs=1, out=tmp_path / "tune", log=lambda m: None)
    info = json.loads((tmp_path / "tune" / "search.json").read_text())
    assert info["task"] == "depth" and info["reused_model"] and info["full_epochs"] == 2
    for c in info["candidates"]:
        run = tmp_path / "tune" / "runs" / f"sigma_{c['sigma']:g}"
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == 1 and c["score"] == pytest.approx(rows[0]["val_brmse"])
        cfg = read_checkpoint(run / "best.pt")["extra"]["config"]
        assert cfg["loss"]["init_noise_sigma"] == c["sigma"] and cfg["loss"]["learn_noise"] is False
    assert res["search"].sigma in (0.3, 1.0)


def _flat_root(root, values):
    """A tiny NYUD2-DIR layout whose training depth maps hold only ``values`` (uint8 = d/10*255),
    the left and right halves of each map one value each."""
    import cv2
    import numpy as np

    rows = {"train": [], "test": []}
    for split, scenes in (("train", ["a_out", "b_out", "c_out", "d_out"]), ("test", ["t_out"])):
        for s in scenes:
            rel = f"data/nyu2_{split}/{s}/0"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / f"{rel}.png"), np.full((240, 320, 3), 128, np.uint8))
            raw = np.empty((240, 320), np.uint8 if split == "train" else np.uint16)
            if split == "train":
                raw[:, :160], raw[:, 160:] = values[0], values[-1]
            else:
                raw[:] = 2000
            cv2.imwrite(str(root / f"{rel}_depth.png"), raw)
            rows[split].append(f"{rel}.png,{rel}_depth.png")
        (root / f"data/nyu2_{split}.csv").write_text("\n".join(rows[split]) + "\n")
    np.save(root / "data/test_balanced_mask.npy", np.ones((1, 228, 304), bool))


@pytest.mark.parametrize("values,bins", [((51,), 1), ((51, 153), 2)])
def test_depth_validation_bins_counted_and_one_bin_refused(tmp_path, values, bins):
    from ihmr.config import load_config, save_config
    from ihmr.depth.train import DepthTrainConfig
    from ihmr.errors import DataError
    from ihmr.sigma.tasks import _depth_validation_bins, tune

    root = tmp_path / "nyud2"
    _flat_root(root, values)  # 51/255*10 = 2.0 m (bin 20), 153/255*10 = 6.0 m (bin 60)
    sets = [
        f"data.root={root}",
        f"out={tmp_path / 'bni'}",
        "data.val_fraction=0.5",
        "loss.kind=bni",
        "threads=1",
    ]
    cfg = load_config(DepthTrainConfig, None, sets)
    assert _depth_validation_bins(cfg) == bins
    if bins == 1:
        path = save_config(cfg, tmp_path / "bni.yaml")
        with pytest.raises(DataError, match="cover 1 non-empty 0.1 m depth bin"):
            tune(path, grid=[0.3, 1.0], budget_epochs=1, out=tmp_path / "tune", log=lambda m: None)
        assert not (tmp_path / "tune").exists() and not (tmp_path / "bni").exists()
