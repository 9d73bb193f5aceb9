"""``ihmr eval`` from a checkpoint on cached features and from a predictions file; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ihmr.errors import DataError
from ihmr.io import torch_save
from ihmr.models.hmr import HMRHead, head_checkpoint
from ihmr.pose.demo_data import DemoConfig, make_demo
from ihmr.pose.features import FeatureStore
from ihmr.pose.jobs import eval_job
from ihmr.pose.split import GenderedBodies


@pytest.fixture(scope="module")
def setup(tmp_path_factory, toy_body):
    root = tmp_path_factory.mktemp("evaljob")
    meta = make_demo(
        root / "demo", DemoConfig(n_train=10, n_test=48, feature_dim=32), body=toy_body
    )
    torch.manual_seed(0)
    head = HMRHead(32, toy_body.mean_params)
    for p in head.parameters():
        p.data.normal_(0, 0.02)
    torch_save(root / "head.pt", head_checkpoint(head, features_fingerprint=meta["feature_source"]))
    return root, meta, head.eval()


def test_checkpoint_then_predictions_file(setup, toy_body):
    root, meta, head = setup
    bodies = GenderedBodies(toy_body)
    labels = root / "demo" / "dataset_extras" / "demo_test.npz"
    feats = root / "demo" / "features" / "demo_test"
    m1, info = eval_job(
        labels,
        root / "a",
        checkpoint=root / "head.pt",
        features=feats,
        bodies=bodies,
        chunk=20,
        renders=0,
    )
    preds = np.load(root / "a" / "predictions.npz")
    with torch.no_grad():
        want = head(FeatureStore(feats).tensor())
    np.testing.assert_allclose(preds["pose"], want.rotmat.numpy(), atol=1e-6)
    np.testing.assert_allclose(preds["betas"], want.betas.numpy(), atol=1e-6)
    assert (root / "a" / "split.npz").is_file() and info["n_samples"] == 48
    # the split built inside the evaluation pass equals the one `ihmr split` computes
    from ihmr.pose.spin_data import read_spin_npz
    from ihmr.pose.split import load_split, make_split

    direct = make_split(read_spin_npz(labels), bodies)
    in_pass = load_split(root / "a" / "split.npz")
    np.testing.assert_allclose(in_pass.distance, direct.distance, rtol=1e-6)
    np.testing.assert_array_equal(in_pass.region, direct.region)
    # the saved predictions, evaluated as any method's file, give the same metrics
    m2, _ = eval_job(
        labels,
        root / "b",
        predictions=root / "a" / "predictions.npz",
        split=root / "a" / "split.npz",
        bodies=bodies,
        renders=0,
    )
    for k, v in m1.items():
        if isinstance(v, dict):
            for t in v:
                assert v[t] == pytest.approx(m2[k][t], rel=1e-5)
        elif isinstance(v, str):  # the protocol variant, e.g. mpvpe_body
            assert v == m2[k]
        else:
            assert v == pytest.approx(m2[k], rel=1e-5)
    assert json.loads((root / "b" / "metrics.json").read_text()) == m2


def test_mismatches_are_caught(setup, toy_body, tmp_path):
    root, meta, head = setup
    bodies = GenderedBodies(toy_body)
    labels = root / "demo" / "dataset_extras" / "demo_test.npz"
    feats = root / "demo" / "features" / "demo_test"
    torch_save(tmp_path / "other.pt", head_checkpoint(head, features_fingerprint="demo-other"))
    with pytest.raises(DataError, match="backbone"):
        eval_job(
            labels, tmp_path / "o", checkpoint=tmp_path / "other.pt", features=feats, bodies=bodies
        )
    with pytest.raises(DataError, match="different sample list|samples but"):
        eval_job(
            root / "demo" / "dataset_extras" / "demo_train.npz",
            tmp_path / "o",
            checkpoint=root / "head.pt",
            features=feats,
            bodies=bodies,
        )
    torch_save(
        tmp_path / "spin.pt", {"model": head.state_dict()}
    )  # features not from this backbone
    with pytest.raises(DataError, match="fingerprint"):
        eval_job(
            labels, tmp_path / "o", checkpoint=tmp_path / "spin.pt", features=feats, bodies=bodies
        )
    with pytest.raises(DataError, match="exactly one"):
        eval_job(labels, tmp_path / "o", bodies=bodies)
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_cli_split_and_eval_open_body(tmp_path, rng):
    pytest.importorskip("ihmr.body")
    from typer.testing import CliRunner

    from ihmr.cli import _register, app

    from .helpers import spin_arrays

    _register()
    arrs = spin_arrays(12, rng, "3dpw")
    np.savez(tmp_path / "3dpw_test.npz", **arrs)
    np.savez(tmp_path / "pred.npz", pose=arrs["pose"] * 0.5, betas=arrs["shape"])
    run = CliRunner().invoke
    r = run(
        app,
        [
            "split",
            str(tmp_path / "3dpw_test.npz"),
            "--out",
            str(tmp_path / "s" / "split.npz"),
            "--regions",
            "5",
        ],
    )
    assert r.exit_code == 0, r.output
    r = run(
        app,
        [
            "eval",
            "--labels",
            str(tmp_path / "3dpw_test.npz"),
            "--predictions",
            str(tmp_path / "pred.npz"),
            "--split",
            str(tmp_path / "s" / "split.npz"),
            "--out",
            str(tmp_path / "e"),
            "--renders",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "| MPVPE |" in r.output
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["bMPVPE"]["tail5"] is None  # int(12 * 5 / 100) = 0 samples
    assert m["mpvpe_body"] == "gendered"  # the IHMR release's protocol is the default
    # independent: per-sample vertex error by hand (predicted and true meshes through the
    # ground-truth gender's body), averaged per region of the saved split
    from ihmr.body import forward_gendered, load_bodies

    bodies = load_bodies()
    f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        pv = forward_gendered(
            bodies, arrs["gender"], f32(arrs["shape"]), f32(arrs["pose"] * 0.5)
        ).vertices
        gv = forward_gendered(
            bodies, arrs["gender"], f32(arrs["shape"]), f32(arrs["pose"])
        ).vertices
    per = 1000 * np.sqrt(((pv.double() - gv.double()).numpy() ** 2).sum(-1)).mean(-1)  # (12,) mm
    s = np.load(tmp_path / "s" / "split.npz")
    region_means = [per[s["region"] == r].mean() for r in np.unique(s["region"])]
    assert m["bMPVPE"]["all"] == pytest.approx(np.mean(region_means), rel=1e-4)
    assert m["MPVPE"] == pytest.approx(per.mean(), rel=1e-4)
    assert m["bMPVPE"]["tail10"] == pytest.approx(
        per[np.argmax(s["distance"])], rel=1e-4
    )  # 1 sample
    assert len(region_means) > 1 and m["bMPVPE"]["all"] != pytest.approx(m["MPVPE"], rel=1e-3)
    r = run(
        app,
        [
            "eval",
            "--labels",
            str(tmp_path / "3dpw_test.npz"),
            "--predictions",
            str(tmp_path / "pred.npz"),
            "--split",
            str(tmp_path / "s" / "split.npz"),
            "--out",
            str(tmp_path / "n"),
            "--renders",
            "0",
            "--mpvpe-body",
            "neutral",
        ],
    )
    assert r.exit_code == 0, r.output
    n = json.loads((tmp_path / "n" / "metrics.json").read_text())
    assert n["mpvpe_body"] == "neutral"
    assert n["bMPVPE"] == m["bMPVPE"]  # the open body serves every gender: the same numbers


def test_eval_task_from_checkpoint(tmp_path):
    from ihmr.cli.eval import _task_of

    torch.save({"kind": "ihmr-pose-head", "head": {}}, tmp_path / "ours.pt")
    torch.save({"model": {"fc1.weight": torch.zeros(1)}}, tmp_path / "spin.pt")
    torch.save({"task": "segmentation", "model": {}}, tmp_path / "seg.pt")
    torch.save({"kind": "depth", "model": {}}, tmp_path / "depth.pt")
    torch.save({"kind": "age", "model": {}}, tmp_path / "age.pt")
    assert _task_of(tmp_path / "ours.pt") == "pose" and _task_of(tmp_path / "spin.pt") == "pose"
    assert _task_of(tmp_path / "depth.pt") == "depth" and _task_of(tmp_path / "age.pt") == "age"
    with pytest.raises(ValueError, match="task 'segmentation'"):
        _task_of(tmp_path / "seg.pt")
