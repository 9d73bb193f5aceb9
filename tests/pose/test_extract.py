"""Feature extraction: matches a direct computation, resumes after a kill, views, rank split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.errors import DataError
from ihmr.models.resnet import resnet50
from ihmr.pose.crop import crop_image, normalise
from ihmr.pose.extract import extract, view_augments
from ihmr.pose.features import FeatureStore
from ihmr.pose.spin_data import read_spin_npz

from .helpers import spin_arrays

N, RES = 10, 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import cv2

    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    arrs = spin_arrays(N, rng, "lsp")
    arrs["imgname"] = np.array([f"im/{i}.png" for i in range(N)])
    arrs["center"] = rng.uniform(30, 50, (N, 2))
    arrs["scale"] = rng.uniform(0.2, 0.3, N)
    (root / "im").mkdir()
    for i in range(N):
        cv2.imwrite(
            str(root / "im" / f"{i}.png"), rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)
        )
    np.savez(root / "lsp_test.npz", **arrs)
    torch.manual_seed(0)
    return root, resnet50(None).eval()


def _run(data, out, **kw):
    root, net = data
    args = dict(backbone=net, fingerprint="net0", batch_size=3, shard_size=4, res=RES, workers=2)
    args.update(kw)
    return extract(root / "lsp_test.npz", root, out, **args)


def test_matches_direct_computation(data, tmp_path):
    import cv2

    root, net = data
    res = _run(data, tmp_path / "s")
    assert res["complete"] and res["shards_written"] == 3
    store = FeatureStore(tmp_path / "s")
    labels = read_spin_npz(root / "lsp_test.npz")
    store.check_labels(labels)
    for i in (0, 7):
        img = cv2.imread(str(root / "im" / f"{i}.png"))[..., ::-1]
        x = normalise(crop_image(img, labels.center[i].numpy(), float(labels.scale[i]), RES))
        with torch.no_grad():
            want = net.features(torch.from_numpy(x)[None])[0].numpy()
        np.testing.assert_allclose(store.array()[i].astype(np.float32), want, rtol=1e-2, atol=1e-3)


def test_resume_after_kill(data, tmp_path):
    full = _run(data, tmp_path / "full")
    assert full["complete"]

    def die(shard):
        if shard == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(data, tmp_path / "s", on_shard=die)
    with pytest.raises(DataError, match="incomplete"):
        FeatureStore(tmp_path / "s")
    res = _run(data, tmp_path / "s")
    assert res["shards_written"] == 1 and res["complete"]  # shards 0 and 1 were kept
    np.testing.assert_array_equal(
        FeatureStore(tmp_path / "s").array(), FeatureStore(tmp_path / "full").array()
    )


def test_views_and_rank_split(data, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    r0 = _run(data, tmp_path / "v", views=2)
    assert r0["shards_written"] == 2 and not r0["complete"]  # shards 0 and 2
    monkeypatch.setenv("RANK", "1")
    r1 = _run(data, tmp_path / "v", views=2)
    assert r1["shards_written"] == 1 and r1["complete"]
    store = FeatureStore(tmp_path / "v")
    assert store.views == 2 and store.shards()[0].shape == (4, 3, 2048)
    vl = store.view_labels()
    assert vl["pose"].shape == (N, 2, 72) and vl["part"].shape == (N, 2, 24, 3)
    assert [a.flip for a in view_augments(0, 6, 2)] == vl["flip"][6].tolist()
    assert not np.array_equal(store.array(0), store.array(1))


def test_missing_image(data, tmp_path):
    root, net = data
    arrs = dict(np.load(root / "lsp_test.npz"))
    arrs["imgname"][3] = "im/x.png"
    np.savez(tmp_path / "lsp_bad.npz", **arrs)
    with pytest.raises(DataError, match="im/x.png"):
        extract(
            tmp_path / "lsp_bad.npz",
            root,
            tmp_path / "s",
            backbone=net,
            fingerprint="x",
            shard_size=4,
            res=RES,
        )
