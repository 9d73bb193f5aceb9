"""The pose commands through the real entry point: version, demo-data, demo, extract-features,
export. Tiny settings; every test checks values against an independent computation."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_the_package_version(ihmr_main):
    import tomllib

    want = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    code, out, _ = ihmr_main("version")
    assert code == 0 and out.strip() == want


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """``ihmr demo-data`` with 200 training and 40 test samples, 32-d features."""
    import sys

    from ihmr.cli import main

    out = tmp_path_factory.mktemp("demo") / "data"
    argv = sys.argv
    sys.argv = [
        "ihmr",
        "demo-data",
        "--out",
        str(out),
        "--n-train",
        "200",
        "--n-test",
        "40",
        "--seed",
        "3",
        "--set",
        "feature_dim=32",
    ]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = argv
    assert exc.value.code == 0
    return out


def test_demo_data_files_and_distribution(demo_data):
    """Known answers of the generator: SPIN-format labels of the open body ('n'), all with SMPL
    ground truth; test severities uniform in [0, 1]; training severities an exponential of scale
    0.15 truncated to [0, 1], whose mean is 0.15 - e^(-1/0.15) / (1 - e^(-1/0.15)) = 0.1487."""
    from ihmr.config import load_config
    from ihmr.pose.demo_data import DemoConfig
    from ihmr.pose.features import FeatureStore
    from ihmr.pose.spin_data import labels_fingerprint, read_spin_npz

    for split, n in (("train", 200), ("test", 40)):
        z = np.load(demo_data / "dataset_extras" / f"demo_{split}.npz")
        assert z["pose"].shape == (n, 72) and z["shape"].shape == (n, 10)
        assert (z["has_smpl"] == 1).all() and (z["gender"] == "n").all()
        store = FeatureStore(demo_data / "features" / f"demo_{split}")
        assert store.array().shape == (n, 32) and np.isfinite(store.array()).all()
        store.check_labels(read_spin_npz(demo_data / "dataset_extras" / f"demo_{split}.npz"))
        assert labels_fingerprint(z["imgname"]) == labels_fingerprint(z["imgname"][:n])
    test = np.load(demo_data / "dataset_extras" / "demo_test.npz")["severity"]
    train = np.load(demo_data / "dataset_extras" / "demo_train.npz")["severity"]
    assert 0 <= test.min() and test.max() <= 1 and abs(test.mean() - 0.5) < 0.15  # sd 0.046
    q = math.exp(-1 / 0.15)
    assert 0 <= train.min() and train.max() <= 1
    assert abs(train.mean() - (0.15 - q / (1 - q))) < 0.04  # sd of the mean 0.0105
    meta = json.loads((demo_data / "demo.json").read_text())
    assert {k: v["count"] for k, v in meta["sets"].items()} == {"train": 200, "test": 40}
    cfg = load_config(DemoConfig, demo_data / "config.yaml")
    assert (cfg.n_train, cfg.n_test, cfg.seed, cfg.feature_dim) == (200, 40, 3, 32)


def test_demo_trains_mse_and_bmc_side_by_side(demo_data, tmp_path, ihmr_main):
    runs = tmp_path / "runs"
    code, out, _ = ihmr_main(
        "demo",
        "--data",
        demo_data,
        "--runs",
        runs,
        "--losses",
        "mse,bmc",
        "--set",
        "optim.epochs=1",
        "--set",
        "optim.batch_size=16",
        "--set",
        "data.samples_per_epoch=32",
        "--no-render",
    )
    assert code == 0
    saved = json.loads((runs / "demo_metrics.json").read_text())["metrics"]
    table = [
        line for line in (runs / "demo_metrics.md").read_text().splitlines() if line.startswith("|")
    ]
    rows = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = [float(c.strip("*")) for c in cells[1:]]
    for kind, col in (("mse", 0), ("bmc", 1)):
        # each column is that run's own evaluation of its head on the demo test set
        m = json.loads((runs / kind / "eval" / "metrics.json").read_text())
        assert saved[kind] == m
        assert rows["bMPVPE all"][col] == pytest.approx(m["bMPVPE"]["all"], abs=0.006)
        assert rows["MPJPE (plain mean)"][col] == pytest.approx(m["MPJPE"], abs=0.006)
        assert (runs / kind / "head.pt").is_file()
    # the lower value of a balanced-metric row is the one in bold
    for line in table[2:]:
        if not line.startswith("| b"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        values = [float(c.strip("*")) for c in cells]
        bold = [c.startswith("**") for c in cells]
        if values[0] != values[1]:
            assert bold == [v == min(values) for v in values], line
    assert "| bMPVPE all |" in out and "renders skipped" in out
    # the verdict is computed from the two columns
    below = sum(
        rows[f"{m} {p}"][1] < rows[f"{m} {p}"][0]
        for m in ("bMPVPE", "bMPJPE", "bPA-MPJPE")
        for p in ("all", "tail 10%", "tail 5%")
    )
    assert f"BMC (pose): below MSE on {below} of 9 balanced metrics" in out


@pytest.fixture(scope="module")
def spin(tmp_path_factory):
    """A randomly initialised HMR in SPIN's layout, and a small SPIN-format image set."""
    import cv2

    from ihmr.body import load_body
    from ihmr.io import torch_save
    from ihmr.models.hmr import HMR

    root = tmp_path_factory.mktemp("spin")
    torch.manual_seed(0)
    model = HMR(load_body("neutral").mean_params).eval()
    torch_save(root / "model_checkpoint.pt", {"model": model.spin_state_dict(), "epoch": 1})
    rng = np.random.default_rng(0)
    (root / "im").mkdir()
    n = 5
    for i in range(n):
        cv2.imwrite(
            str(root / "im" / f"{i}.png"), rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)
        )
    np.savez(
        root / "lsp_test.npz",
        imgname=np.array([f"im/{i}.png" for i in range(n)]),
        center=rng.uniform(40, 60, (n, 2)),
        scale=rng.uniform(0.25, 0.35, n),
        part=np.concatenate([rng.uniform(0, 80, (n, 24, 2)), np.ones((n, 24, 1))], -1),
    )
    return root, model


def test_extract_features_matches_the_backbone(spin, tmp_path, ihmr_main):
    import cv2

    from ihmr.pose.crop import crop_image, normalise
    from ihmr.pose.features import FeatureStore, file_fingerprint

    root, model = spin
    code, out, _ = ihmr_main(
        "extract-features",
        root / "lsp_test.npz",
        "--images",
        root,
        "--checkpoint",
        root / "model_checkpoint.pt",
        "--out",
        tmp_path / "f",
        "--batch-size",
        "2",
        "--shard-size",
        "2",
        "--workers",
        "1",
        "--device",
        "cpu",
    )
    assert code == 0 and re.search(r"wrote 3 shard\(s\) .* \(complete\)", out)
    store = FeatureStore(tmp_path / "f")
    assert store.array().shape == (5, 2048)
    store.check_source(file_fingerprint(root / "model_checkpoint.pt"))
    z = np.load(root / "lsp_test.npz")
    for i in (0, 4):
        img = cv2.imread(str(root / "im" / f"{i}.png"))[..., ::-1]
        x = normalise(crop_image(img, z["center"][i], float(z["scale"][i]), 224))
        with torch.no_grad():
            want = model.backbone.features(torch.from_numpy(x)[None])[0].numpy()
        np.testing.assert_allclose(store.array()[i].astype(np.float32), want, rtol=1e-2, atol=1e-3)


def test_export_combines_backbone_and_head(spin, tmp_path, ihmr_main):
    from ihmr.io import torch_save
    from ihmr.models.hmr import HMRHead, head_checkpoint
    from ihmr.pose.features import file_fingerprint

    root, _ = spin
    spin_ck = root / "model_checkpoint.pt"
    torch.manual_seed(1)
    head = HMRHead(2048)
    for p in head.parameters():
        p.data.normal_(0, 0.02)
    torch_save(
        tmp_path / "head.pt",
        head_checkpoint(head.eval(), features_fingerprint=file_fingerprint(spin_ck)),
    )
    code, out, _ = ihmr_main(
        "export", tmp_path / "head.pt", "--backbone", spin_ck, "--out", tmp_path / "model.pt"
    )
    assert code == 0 and str(tmp_path / "model.pt") in out
    got = torch.load(tmp_path / "model.pt", weights_only=True)["model"]
    src = torch.load(spin_ck, weights_only=True)["model"]
    trained = torch.load(tmp_path / "head.pt", weights_only=True)["head"]
    assert set(got) == set(src) | set(trained)
    for k, v in got.items():  # the trained head's weights, SPIN's backbone for the rest
        torch.testing.assert_close(v, trained[k] if k in trained else src[k], rtol=0, atol=0)
    assert any(not torch.equal(trained[k], src[k]) for k in trained if k in src)
