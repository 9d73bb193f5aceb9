"""Tiny end to end: render a demo dataset, train one epoch, resume, evaluate, CLI wiring."""

import json

import numpy as np
import pytest

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    from ihmr.depth.demo_data import make_demo_dataset
    from ihmr.render.backend import backend_problem

    problem = backend_problem()  # the one reason to skip: no offscreen OpenGL on this machine
    if problem is not None:
        pytest.skip(f"pyrender cannot render here: {problem}")
    root = tmp_path_factory.mktemp("nyud2")
    info = make_demo_dataset(root, train_scenes=3, test_scenes=1, views=2, per_bin=50)
    return root, info


def tiny_sets(root, out, *more):
    """A network of a few thousand weights at 64 x 48, one step per epoch (seconds per run)."""
    return [
        f"data.root={root}",
        f"out={out}",
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
        "device=cpu",
        *more,
    ]


def test_depth_train_resume_rule(demo_root, tmp_path, resume_rule):
    """`ihmr depth train` follows the resume rule shared with `ihmr train` and `ihmr age train`."""
    from ihmr.config import load_config, save_config
    from ihmr.depth.train import DepthTrainConfig

    root, _ = demo_root
    cfg = load_config(
        DepthTrainConfig, None, tiny_sets(root, tmp_path / "unused", "optim.epochs=1")
    )
    resume_rule(("depth", "train"), save_config(cfg, tmp_path / "cfg.yaml"), tmp_path / "run", 1)


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


def _rows(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _naive_test_metrics(checkpoint, root):
    """Per-pixel errors of the checkpoint on the test images' balanced mask, by hand: plain RMSE
    over all masked pixels and balanced RMSE = sqrt(mean over non-empty 0.1 m bins of the bin's
    mean squared error)."""
    import torch

    from ihmr.depth import data as D
    from ihmr.depth.evaluate import load_depth_model
    from ihmr.depth.model import upsample_to

    model, cfg = load_depth_model(checkpoint, "cpu")
    ds = D.NYUD2DIR(D.Layout(str(root)), "test", augment=False, input_wh=cfg.data.input_wh)
    sq, gt = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            pred = upsample_to(model(item["image"][None]), item["depth"].shape[-2:])[0, 0].numpy()
            m = item["mask"].numpy()
            t = item["depth"][0].numpy()[m].astype(np.float64)
            sq.append((np.maximum(pred[m].astype(np.float64), 1e-3) - t) ** 2)
            gt.append(t)
    sq, gt = np.concatenate(sq), np.concatenate(gt)
    # DIR's bin rule: the float32 product d * 10, truncated (nyud2-dir/util.py get_bin_idx)
    bins = np.minimum((gt.astype(np.float32) * np.float32(10)).astype(int), 99)
    per_bin = [sq[bins == b].mean() for b in np.unique(bins)]
    return np.sqrt(sq.mean()), np.sqrt(np.mean(per_bin)), len(gt)


def test_cli_train_kill_resume_and_evaluate(demo_root, tmp_path, ihmr_main, monkeypatch):
    """`ihmr depth train` twice over; a run killed after epoch 1's checkpoint and resumed ends
    with the uninterrupted run's weights and metrics; `ihmr depth eval` and `ihmr eval` agree
    with a by-hand evaluation."""
    import torch

    from ihmr.config import load_config
    from ihmr.depth.train import DepthTrainConfig, train_depth
    from ihmr.errors import ConfigError
    from ihmr.runs import RunDir

    root, _ = demo_root
    args = [x for s in tiny_sets(root, tmp_path / "full") for x in ("--set", s)]
    code, out, _ = ihmr_main("depth", "train", *args)
    assert code == 0 and f"run folder: {tmp_path / 'full'}" in out

    save = RunDir.save

    def save_then_die(self, *a, **k):
        save(self, *a, **k)
        raise KeyboardInterrupt  # killed right after epoch 1's checkpoint

    cfg = load_config(DepthTrainConfig, None, tiny_sets(root, tmp_path / "killed"))
    monkeypatch.setattr(RunDir, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_depth(cfg)
    monkeypatch.setattr(RunDir, "save", save)
    assert len(_rows(tmp_path / "killed")) == 1
    with pytest.raises(ConfigError, match="already holds a run.*--resume"):
        train_depth(cfg)  # never continued or overwritten without --resume
    code, out, _ = ihmr_main("depth", "train", "--resume", tmp_path / "killed")
    assert code == 0 and f"run folder: {tmp_path / 'killed'}" in out
    assert _rows(tmp_path / "killed") == _rows(tmp_path / "full")
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["state"]["model"]
    b = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["state"]["model"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)

    best = tmp_path / "full" / "best.pt"
    code, out, _ = ihmr_main("depth", "eval", best, "--out", tmp_path / "eval", "--device", "cpu")
    assert code == 0
    res = json.loads((tmp_path / "eval" / "full" / "metrics.json").read_text())
    rmse, brmse, pixels = _naive_test_metrics(best, root)
    assert res["pixels"]["overall"] == pixels > 0
    assert res["overall"]["rmse"] == pytest.approx(rmse, rel=1e-5)
    assert res["balanced"]["overall"]["rmse"] == pytest.approx(brmse, rel=1e-5)
    assert f"{res['overall']['rmse']:.3f}" in (tmp_path / "eval" / "table.md").read_text()
    for name in ("error_per_bin.png", "examples.png"):
        assert (tmp_path / "eval" / "full" / name).stat().st_size > 1000
    # the generic `ihmr eval` recognises the depth checkpoint and writes the same numbers
    code, _, _ = ihmr_main(
        "eval", "--checkpoint", best, "--out", tmp_path / "eval2", "--device", "cpu"
    )
    assert code == 0
    got = json.loads((tmp_path / "eval2" / "metrics.json").read_text())
    assert got["overall"]["rmse"] == res["overall"]["rmse"]


def test_nan_loss_stops_with_location_and_keeps_last_checkpoint(demo_root, tmp_path, monkeypatch):
    from ihmr.config import load_config
    from ihmr.depth.losses import DepthLoss
    from ihmr.depth.train import DepthTrainConfig, train_depth
    from ihmr.runs import NonFiniteLossError, read_checkpoint

    root, _ = demo_root
    forward, calls = DepthLoss.forward, []

    def poisoned(self, *a, **k):
        calls.append(1)
        loss = forward(self, *a, **k)
        return loss * float("nan") if len(calls) > 1 else loss  # epoch 2's first step

    monkeypatch.setattr(DepthLoss, "forward", poisoned)
    cfg = load_config(DepthTrainConfig, None, tiny_sets(root, tmp_path / "run"))
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, global step 2, batch 0.*last\.pt"):
        train_depth(cfg)
    ck = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["epoch"] == 1  # the last good checkpoint is intact
    assert all(np.isfinite(v.numpy()).all() for v in ck["state"]["model"].values())


def test_cli_demo_data(tmp_path, ihmr_main):
    from ihmr.render.backend import backend_problem

    if backend_problem() is not None:
        pytest.skip(f"pyrender cannot render here: {backend_problem()}")
    from ihmr.depth import data as D

    out = tmp_path / "nyud2"
    code, text, _ = ihmr_main(
        "depth", "demo-data", "--out", out, "--train-scenes", "1", "--test-scenes", "1"
    )
    assert code == 0
    # 8 views of each room; the test split's depth PNGs are 16-bit millimetres
    assert len(list((out / "data" / "nyu2_train").rglob("*.png"))) == 8 * 2  # RGB + depth
    assert len((out / "data" / "nyu2_test.csv").read_text().splitlines()) == 8
    mask = np.load(out / "data" / "test_balanced_mask.npy")
    assert f"8 train / 8 test images, {int(mask.sum())} balanced test pixels" in text
    test = D.NYUD2DIR(D.Layout(str(out)), "test")
    depth = np.stack([test.load(i)[1] for i in range(8)])
    counts = np.bincount(D.depth_bins(depth[mask]), minlength=D.N_BINS)
    assert counts.max() <= 1500 and depth[mask].min() >= 0.7  # per-bin cap; nothing nearer
