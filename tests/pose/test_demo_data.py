"""Demo data: seeded, SPIN format + feature stores, long-tailed training labels, exact features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.pose.demo_data import DemoConfig, FeatureMap, make_demo
from ihmr.pose.features import FeatureStore
from ihmr.pose.spin_data import read_spin_npz

SMALL = dict(n_train=400, n_test=60, feature_dim=64)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, toy_body):
    out = tmp_path_factory.mktemp("demo")
    return out, make_demo(out, DemoConfig(**SMALL), body=toy_body)


def test_files_and_consistency(demo):
    out, meta = demo
    for name, n in (("train", 400), ("test", 60)):
        labels = read_spin_npz(out / "dataset_extras" / f"demo_{name}.npz")
        store = FeatureStore(out / "features" / f"demo_{name}")
        assert len(labels) == n and store.feature_dim == 64
        store.check_labels(labels)
        store.check_source(meta["feature_source"])
        assert bool(labels.has_smpl.all()) and (labels.gender == -1).all()


def test_seeded(tmp_path, demo, toy_body):
    out, _ = demo
    make_demo(tmp_path / "again", DemoConfig(**SMALL), body=toy_body)
    a = np.load(out / "dataset_extras" / "demo_train.npz")
    b = np.load(tmp_path / "again" / "dataset_extras" / "demo_train.npz")
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(
        FeatureStore(out / "features" / "demo_train").array(),
        FeatureStore(tmp_path / "again" / "features" / "demo_train").array(),
    )
    make_demo(tmp_path / "other", DemoConfig(seed=1, **SMALL), body=toy_body)
    c = np.load(tmp_path / "other" / "dataset_extras" / "demo_train.npz")
    assert not np.allclose(a["pose"], c["pose"])


def test_long_tail_and_even_test(demo):
    out, _ = demo
    tr = np.load(out / "dataset_extras" / "demo_train.npz")
    te = np.load(out / "dataset_extras" / "demo_test.npz")
    # truncated exponential of scale 0.15: median 0.15 ln 2 = 0.104, P(s > 0.7) ~ 1%
    assert 0.07 < np.median(tr["severity"]) < 0.14
    assert (tr["severity"] > 0.7).mean() < 0.03
    assert 0.35 < np.median(te["severity"]) < 0.65
    assert (te["severity"] > 0.7).mean() > 0.15


def test_features_are_the_affine_map_of_the_labels_without_noise(tmp_path, toy_body):
    cfg = DemoConfig(
        n_train=20, n_test=30, feature_dim=160, obs_noise=0.0, betas_noise=0.0, feature_noise=0.0
    )
    make_demo(tmp_path, cfg, body=toy_body)
    for split in ("train", "test"):
        z = np.load(tmp_path / "dataset_extras" / f"demo_{split}.npz")
        want = FeatureMap(160, 0)(z["pose"], z["shape"], z["camera"])
        got = FeatureStore(tmp_path / "features" / f"demo_{split}").array().astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


def test_observation_noise_is_isotropic_rotation_noise(tmp_path, toy_body):
    """Invert the (injective, affine) feature map of the written features to get the observed
    pose, and compare it with the label: per-joint rotation errors with every axis N(0, 0.1^2),
    independent of the axis and the joint; the generator's own report agrees; the camera is
    seen exactly."""
    from ihmr.geometry import axis_angle_to_matrix, matrix_to_axis_angle, rot6d_to_matrix

    cfg = DemoConfig(n_train=3000, n_test=10, feature_dim=256, feature_noise=0.0, betas_noise=0.0)
    meta = make_demo(tmp_path, cfg, body=toy_body)
    z = np.load(tmp_path / "dataset_extras" / "demo_train.npz")
    x = FeatureStore(tmp_path / "features" / "demo_train").array().astype(np.float64)
    fmap = FeatureMap(256, 0)
    h = np.linalg.lstsq(fmap.a.T.astype(np.float64), (x - fmap.c).T, rcond=None)[0].T
    r_obs = rot6d_to_matrix(torch.as_tensor(h[:, :144]).reshape(-1, 24, 6))
    r_lab = axis_angle_to_matrix(torch.as_tensor(z["pose"]).reshape(-1, 24, 3))
    w = matrix_to_axis_angle(r_lab.transpose(-1, -2) @ r_obs).numpy()  # R_obs = R exp(w)
    std = w.reshape(-1, 72).std(0)
    assert np.all(np.abs(std - 0.1) < 0.1 * 0.1), std  # every joint and axis, 3,000 samples
    assert abs(np.corrcoef(w.reshape(-1, 72), rowvar=False)[np.triu_indices(72, 1)]).max() < 0.1
    noise = meta["noise"]
    assert abs(noise["pose_sigma"] - np.sqrt(2) * 0.1) < 0.015
    assert noise["pose_eig_spread"] < 1.2 * noise["pose_eig_spread_sampling"]
    cam_in = np.stack(
        [5 * (z["camera"][:, 0] - 0.9), 10 * z["camera"][:, 1], 10 * z["camera"][:, 2]], 1
    )
    np.testing.assert_allclose(h[:, 154:157], cam_in, atol=1e-3)


def test_natural_variation_is_balanced_in_test(demo):
    """Joints no family moves carry the natural variation alone: N(0, 0.1^2) per axis in
    training, uniform in [-0.35, 0.35] in test (std 0.35 / sqrt 3 = 0.202)."""
    out, _ = demo
    free = [7, 8, 10, 11, 13, 14, 15, 20, 21, 22, 23]
    tr = np.load(out / "dataset_extras" / "demo_train.npz")["pose"].reshape(-1, 24, 3)[:, free]
    te = np.load(out / "dataset_extras" / "demo_test.npz")["pose"].reshape(-1, 24, 3)[:, free]
    assert abs(tr.std() - 0.1) < 0.01 and np.abs(tr).max() > 0.3  # Gaussian tails
    assert abs(te.std() - 0.35 / np.sqrt(3)) < 0.02 and np.abs(te).max() <= 0.35


def test_bad_settings_name_the_option(tmp_path, toy_body):
    from ihmr.errors import ConfigError

    with pytest.raises(ConfigError, match=r"n_train \(--n-train\) must be an integer >= 1"):
        make_demo(tmp_path, DemoConfig(n_train=-5), body=toy_body)
    with pytest.raises(ConfigError, match="obs_noise"):
        make_demo(tmp_path, DemoConfig(obs_noise=float("nan")), body=toy_body)
    assert not (tmp_path / "demo.json").exists()


def test_keypoints_from_the_body(demo, toy_body):
    out, _ = demo
    te = np.load(out / "dataset_extras" / "demo_test.npz")
    from .helpers import rodrigues

    j49 = toy_body(
        betas=torch.tensor(te["shape"][:5], dtype=torch.float32),
        pose=rodrigues(torch.tensor(te["pose"][:5], dtype=torch.float32).reshape(5, 24, 3)),
    ).joints49
    gt = j49[:, 25:].double().numpy()
    want = gt - gt[:, [2, 3]].mean(1, keepdims=True)
    np.testing.assert_allclose(te["S"][:5, :, :3], want, atol=1e-5)
    assert (te["S"][..., 3] == 1).all() and te["part"].shape == (60, 24, 3)
