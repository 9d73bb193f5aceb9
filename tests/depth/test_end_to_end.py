"""Tiny end to end: render a demo dataset, train one epoch, resume, evaluate, CLI wiring."""

import json

import numpy as np
import pytest

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    from ihmr.depth.demo_data import make_demo_dataset

    root = tmp_path_factory.mktemp("nyud2")
    try:
        info = make_demo_dataset(root, train_scenes=3, test_scenes=1, views=2, per_bin=50)
    except Exception as exc:  # noqa: BLE001 - no offscreen OpenGL on this machine
        pytest.skip(f"pyrender cannot render here: {exc}")
    return root, info


def test_demo_layout_and_depth_distribution(demo_root):
    from ihmr.depth import data as D

    root, info = demo_root
    assert info["train_images"] == 6 and info["test_images"] == 2
    layout = D.Layout(str(root))
    test = D.NYUD2DIR(layout, "test")
    mask = np.load(root / "data/test_balanced_mask.npy")
    assert mask.shape == (2, 228, 304) and mask.dtype == bool
    depth = np.stack([test.load(i)[1] for i in range(2)])
    counts = np.bincount(D.depth_bins(depth[mask]), minlength=100)
    assert counts.max() <= 50 and counts[:7].sum() == 0  # at most per_bin pixels per bin, >= 0.7 m
    assert json.loads((root / "data/shots.json").read_text()).keys() == {"many", "medium", "few"}


@pytest.mark.slow
def test_train_resume_and_evaluate(demo_root, tmp_path):
    from ihmr.config import load_config
    from ihmr.depth.evaluate import evaluate_depth_checkpoint
    from ihmr.depth.train import DepthTrainConfig, train_depth

    root, _ = demo_root
    sets = [f"data.root={root}", f"out={tmp_path / 'run'}", "data.input_wh=[64, 48]",
            "data.val_fraction=0.3", "model.width=0.125", "model.encoder_width=0.125",
            "model.encoder_layers=[1, 1, 1, 1]", "optim.batch_size=2", "optim.epochs=1",
            "optim.max_steps_per_epoch=1", "loss.kind=bni",
            "data.prior_pixels_per_image=50", "threads=1"]
    r = train_depth(load_config(DepthTrainConfig, None, sets))
    assert r["best"]["epoch"] == 0
    r2 = train_depth(load_config(DepthTrainConfig, None, sets + ["optim.epochs=2"]))
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [0, 1] and r2["run"] == r["run"]  # resumed
    res = evaluate_depth_checkpoint(tmp_path / "run/best.pt", tmp_path / "eval", n_examples=1)
    assert np.isfinite(res["overall"]["rmse"]) and res["pixels"]["overall"] > 0
    for name in ("metrics.json", "table.md", "error_per_bin.png", "examples.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0
    # the generic `ihmr eval` recognises the depth checkpoint and writes the same report
    from typer.testing import CliRunner

    from ihmr.cli import _register, app

    _register()
    out = CliRunner().invoke(app, ["eval", "--checkpoint", str(tmp_path / "run/best.pt"),
                                   "--out", str(tmp_path / "eval2"), "--device", "cpu"])
    assert out.exit_code == 0, out.output
    got = json.loads((tmp_path / "eval2" / "metrics.json").read_text())
    want = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert got["overall"]["rmse"] == want["overall"]["rmse"]


def test_cli_registers_depth_commands():
    from typer.testing import CliRunner

    from ihmr.cli import _register, app

    _register()
    out = CliRunner().invoke(app, ["depth", "--help"])
    assert out.exit_code == 0 and "demo-data" in out.output and "eval" in out.output
