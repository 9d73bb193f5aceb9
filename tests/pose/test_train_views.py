"""`ihmr train` on cached augmented views: draws, batches, static-fit poses, resume (tiny)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ihmr.body.testing import write_smpl_folder
from ihmr.pose.config import DatasetConfig, PoseTrainConfig
from ihmr.pose.crop import Augment, transform_keypoints2d, transform_keypoints3d, transform_pose
from ihmr.pose.extract import view_augments
from ihmr.pose.features import FeatureStore, FeatureStoreWriter
from ihmr.pose.spin_data import labels_fingerprint

D, K = 16, 3


def rotvec_to_matrix(aa: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) with scipy (independent of ihmr.geometry and the trainer)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(*aa.shape[:-1], 3, 3)


def make_view_set(root: Path, name: str, n: int, seed: int, gt: bool) -> DatasetConfig:
    """SPIN labels + a store with K views, labelled as `ihmr extract-features --views` does;
    without ``gt`` a 2-D dataset (no pose, no S) with a static fits file."""
    rng = np.random.default_rng(seed)
    imgname = np.array([f"{name}/{i:05d}.jpg" for i in range(n)])
    center, scale = rng.uniform(100, 150, (n, 2)), rng.uniform(0.8, 1.2, n)
    part = np.concatenate([rng.uniform(60, 180, (n, 24, 2)), np.ones((n, 24, 1))], -1)
    op = np.concatenate([rng.uniform(60, 180, (n, 25, 2)), np.ones((n, 25, 1))], -1)
    arrs = dict(imgname=imgname, center=center, scale=scale, part=part, openpose=op)
    pose = rng.normal(0, 0.3, (n, 72))
    S = np.zeros((n, 24, 4))
    if gt:
        S = np.concatenate([rng.normal(0, 0.3, (n, 24, 3)), np.ones((n, 24, 1))], -1)
        arrs.update(S=S, pose=pose, shape=rng.normal(0, 0.5, (n, 10)), has_smpl=np.ones(n))
    else:
        fits = np.concatenate([pose, rng.normal(0, 0.5, (n, 10))], 1)
        np.save(root / f"{name}_fits.npy", fits)
        pose = np.zeros((n, 72))  # what the extraction saw: the label file has no pose
    np.savez(root / f"{name}.npz", **arrs)
    w = FeatureStoreWriter(
        root / f"{name}_feats",
        dataset=name,
        count=n,
        feature_dim=D,
        labels_fingerprint=labels_fingerprint(imgname),
        source_checkpoint="test",
        source_fingerprint="src0",
        views=K,
        shard_size=16,
    )
    wmat = np.random.default_rng(99).normal(size=(72, D))
    for sh, a, b in w.pending():
        feats, vl = (
            [],
            {k: [] for k in ("pose", "part", "openpose", "S", "flip", "rot", "scale", "pn")},
        )
        for i in range(a, b):
            augs = view_augments(0, i, K)
            poses = [pose[i]] + [transform_pose(pose[i], x) for x in augs]
            feats.append([np.maximum(p @ wmat, 0) + 0.05 * rng.normal(size=D) for p in poses])
            vl["pose"].append(poses[1:])
            vl["part"].append(
                [transform_keypoints2d(part[i], center[i], scale[i], 224, x) for x in augs]
            )
            vl["openpose"].append(
                [transform_keypoints2d(op[i], center[i], scale[i], 224, x) for x in augs]
            )
            vl["S"].append([transform_keypoints3d(S[i], x) for x in augs])
            for key in ("flip", "rot", "scale", "pn"):
                vl[key].append([getattr(x, key) for x in augs])
        w.write_shard(sh, np.array(feats), {k: np.array(v) for k, v in vl.items()})
    w.finalize()
    return DatasetConfig(
        name, f"{name}.npz", f"{name}_feats", fits=None if gt else f"{name}_fits.npy"
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_views")
    make_view_set(root, "h36m_train", 40, 0, gt=True)
    make_view_set(root, "coco_train", 24, 1, gt=False)
    write_smpl_folder(root / "smpl", n_vertices=200)
    return root


def datasets():
    return [
        DatasetConfig("h36m", "h36m_train.npz", "h36m_train_feats", weight=0.6),
        DatasetConfig(
            "coco", "coco_train.npz", "coco_train_feats", weight=0.4, fits="coco_train_fits.npy"
        ),
    ]


def config(data: Path, out: Path) -> PoseTrainConfig:
    cfg = PoseTrainConfig()
    cfg.data.root, cfg.data.train = str(data), datasets()
    cfg.optim.epochs, cfg.optim.batch_size, cfg.data.samples_per_epoch = 3, 16, 64
    cfg.out, cfg.smpl_dir, cfg.progress, cfg.device = str(out), str(data / "smpl"), False, "cpu"
    cfg.loss.kind = "bmc"
    return cfg


def expected(data: Path, ds: str, i: int, k: int, fits: bool) -> dict[str, np.ndarray]:
    """Independent lookup of (sample i, view k): features and labels straight from the files."""
    lab = np.load(data / f"{ds}.npz")
    store = FeatureStore(data / f"{ds}_feats")
    c, s = lab["center"][i], lab["scale"][i]
    if k == 0:
        kp = np.concatenate([lab["openpose"][i], lab["part"][i]])
        kp2d = np.concatenate([(kp[:, :2] - c) / (100 * s), kp[:, 2:]], 1)
        kp3d = lab["S"][i] if "S" in lab else np.zeros((24, 4))
        pose = np.load(data / f"{ds}_fits.npy")[i, :72] if fits else lab["pose"][i]
    else:
        v = store.view_labels()
        kp2d = np.concatenate([v["openpose"][i, k - 1], v["part"][i, k - 1]])
        kp3d = v["S"][i, k - 1]
        if fits:
            aug = Augment(flip=bool(v["flip"][i, k - 1]), rot=float(v["rot"][i, k - 1]))
            pose = transform_pose(np.load(data / f"{ds}_fits.npy")[i, :72], aug)
        else:
            pose = v["pose"][i, k - 1]
    return {
        "features": store.array(k)[i].astype(np.float32),
        "kp2d": kp2d,
        "kp3d": kp3d,
        "pose": rotvec_to_matrix(pose.reshape(24, 3)).reshape(216),
    }


def test_view_draws_cover_all_views_and_are_reproducible(data):
    from ihmr.pose.train_data import epoch_draws, load_train_set

    ts = load_train_set(datasets(), data)
    assert ts.views == K and len(ts) == 64 and ts.features.shape == (64 * (1 + K), D)
    idx, view = epoch_draws(ts, 2, 7, 32, samples=6400)
    assert view.shape == idx.shape == (200, 32)
    counts = torch.bincount(view.reshape(-1), minlength=K + 1)
    assert counts.numel() == K + 1 and (counts > 0.22 * 6400).all()  # uniform: 0.25 each
    idx2, view2 = epoch_draws(ts, 2, 7, 32, samples=6400)
    assert torch.equal(idx, idx2) and torch.equal(view, view2)
    assert not torch.equal(view, epoch_draws(ts, 3, 7, 32, samples=6400)[1])
    assert not torch.equal(view, epoch_draws(ts, 2, 8, 32, samples=6400)[1])
    # the sample indices are those drawn without views; views off -> one row per sample
    flat = load_train_set(datasets(), data, use_views=False)
    idx0, view0 = epoch_draws(flat, 2, 7, 32, samples=6400)
    assert view0 is None and torch.equal(idx0, idx) and flat.features.shape == (64, D)
    # two ranks split the same global draw
    r0 = epoch_draws(ts, 2, 7, 16, samples=6400, world_size=2, rank=0)[1]
    r1 = epoch_draws(ts, 2, 7, 16, samples=6400, world_size=2, rank=1)[1]
    assert torch.equal(torch.stack([r0, r1], 1).reshape(-1), view.reshape(-1))


def test_trainer_batches_hold_the_drawn_views(data, tmp_path, monkeypatch):
    from ihmr.pose import train as train_mod
    from ihmr.pose.train_data import epoch_draws, load_train_set

    seen = []
    real = train_mod.TrainStep.forward

    def spy(self, features, batch):
        seen.append((features.clone(), {k: v.clone() for k, v in batch.items()}))
        return real(self, features, batch)

    monkeypatch.setattr(train_mod.TrainStep, "forward", spy)
    cfg = config(data, tmp_path / "run")
    cfg.optim.epochs = 1
    train_mod.train(cfg)
    idx, view = epoch_draws(load_train_set(datasets(), data), 0, cfg.seed, 16, 64)
    assert len(seen) == idx.shape[0] == 4
    checked = set()
    for s, (feats, batch) in enumerate(seen):
        for b in range(16):
            i, k = int(idx[s, b]), int(view[s, b])
            ds, j, fits = ("h36m_train", i, False) if i < 40 else ("coco_train", i - 40, True)
            want = expected(data, ds, j, k, fits)
            torch.testing.assert_close(feats[b].float(), torch.from_numpy(want["features"]))
            for key in ("kp2d", "kp3d", "pose"):
                torch.testing.assert_close(
                    batch[key][b], torch.from_numpy(want[key]).float(), atol=1e-5, rtol=1e-5
                )
            checked.add((fits, k > 0))
    assert checked == {(False, False), (False, True), (True, False), (True, True)}


def test_augment_rotmats_matches_transform_pose():
    """The batched rotation-matrix form equals crop.transform_pose (scipy) for every case."""
    from ihmr.pose.train_data import augment_rotmats

    rng = np.random.default_rng(3)
    n = 40
    pose = rng.normal(0, 0.6, (n, 72))
    flip = rng.random(n) < 0.5
    rot = np.where(rng.random(n) < 0.7, rng.uniform(-60, 60, n), 0.0)
    got = augment_rotmats(
        torch.from_numpy(rotvec_to_matrix(pose.reshape(n, 24, 3))),
        torch.from_numpy(flip),
        torch.from_numpy(rot),
    )
    for i in range(n):
        want = rotvec_to_matrix(
            transform_pose(pose[i], Augment(bool(flip[i]), float(rot[i]))).reshape(24, 3)
        )
        np.testing.assert_allclose(got[i].numpy(), want, atol=1e-10)


def test_static_fit_poses_are_transformed_like_stored_gt_poses(data):
    """The stored GT view poses are transform_pose(GT, view params); fits get the same transform."""
    from ihmr.pose.train_data import load_train_set

    v = FeatureStore(data / "h36m_train_feats").view_labels()
    gt = np.load(data / "h36m_train.npz")["pose"]
    for i in range(0, 40, 7):
        for k in range(K):
            aug = Augment(flip=bool(v["flip"][i, k]), rot=float(v["rot"][i, k]))
            np.testing.assert_allclose(transform_pose(gt[i], aug), v["pose"][i, k], atol=1e-12)
    ts = load_train_set(datasets(), data)
    fv = FeatureStore(data / "coco_train_feats").view_labels()
    fit = np.load(data / "coco_train_fits.npy")[:, :72]
    assert fv["flip"].any() and (fv["rot"] != 0).any()
    for j in range(24):
        for k in range(1, K + 1):
            aug = Augment(flip=bool(fv["flip"][j, k - 1]), rot=float(fv["rot"][j, k - 1]))
            want = rotvec_to_matrix(transform_pose(fit[j], aug).reshape(24, 3)).reshape(216)
            row = int(ts.row0[40 + j]) + k
            np.testing.assert_allclose(ts.labels["pose"][row].numpy(), want, atol=1e-5)
            # not the stored pose, which the extraction computed from the label file's zeros
            assert not np.allclose(
                ts.labels["pose"][row].numpy(),
                rotvec_to_matrix(fv["pose"][j, k - 1].reshape(24, 3)).reshape(216),
                atol=1e-3,
            )


def test_resume_with_views_equals_uninterrupted_and_no_view0_warning(data, tmp_path, recwarn):
    from ihmr.pose.train import train

    full = train(config(data, tmp_path / "full"))
    assert full.info["views"] == K and len(full.history) == 3
    assert all(np.isfinite(r["loss_total"]) for r in full.history)
    assert not [w for w in recwarn if "view 0" in str(w.message)]

    def kill(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(data, tmp_path / "killed"), callback=kill)
    resumed = train(config(data, tmp_path / "killed"), resume=True)
    drop = ("seconds", "samples_per_s")
    rows = lambda h: [{k: v for k, v in r.items() if k not in drop} for r in h]  # noqa: E731
    assert rows(resumed.history) == rows(full.history)
    a = torch.load(full.checkpoint, weights_only=True)
    b = torch.load(resumed.checkpoint, weights_only=True)
    for k in a["head"]:
        torch.testing.assert_close(b["head"][k], a["head"][k], rtol=0, atol=0)
    # views change what is trained on: the run differs from the view-0-only run
    cfg = config(data, tmp_path / "flat")
    cfg.data.views = False
    flat = train(cfg)
    assert flat.info["views"] == 0
    assert rows(flat.history) != rows(full.history)
