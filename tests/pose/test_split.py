"""The balanced split against a direct computation of its definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.errors import DataError
from ihmr.pose.spin_data import read_spin_npz
from ihmr.pose.split import (
    GenderedBodies,
    assign_regions,
    geodesic_distances,
    load_split,
    make_split,
    plot_split,
    save_split,
    split_from_distances,
    vertex_distances,
)

from .helpers import ToyBody, spin_arrays


def _region_by_definition(d, lo, hi, n):
    """Region r holds lo + (r + 0.001) delta < d <= lo + (r + 1.001) delta; r = 0 holds lo."""
    delta = (hi - lo) / n
    for r in range(n):
        if (lo + (r + 0.001) * delta < d <= lo + (r + 1.001) * delta) or (
            r == 0 and d <= lo + 1.001 * delta
        ):
            return r
    raise AssertionError(f"{d} in no region")


def test_regions_match_definition(rng):
    d = np.concatenate([rng.gamma(2.0, 30.0, 500), [3.0]])
    lo, hi = d.min(), d.max()
    got = assign_regions(d, lo, hi, 100)
    want = [_region_by_definition(x, lo, hi, 100) for x in d]
    np.testing.assert_array_equal(got, want)
    assert got[np.argmin(d)] == 0 and got[np.argmax(d)] == 99
    # exact interior edges go to the region below (the released -0.001 shift)
    edges = lo + (hi - lo) / 100 * np.array([1, 17, 50, 99])
    np.testing.assert_array_equal(assign_regions(edges, lo, hi, 100), [0, 16, 49, 98])


def test_split_from_distances(rng):
    d = rng.uniform(10, 20, 300)
    s = split_from_distances(d, 10, train_distances=np.array([5.0, 12.0, 30.0, 19.9]))
    assert s.counts.sum() == 300 and len(s.edges) == 11
    np.testing.assert_allclose(s.edges[[0, -1]], [d.min(), d.max()])
    np.testing.assert_array_equal(s.counts, np.bincount(s.region, minlength=10))
    assert s.train_counts.sum() == 4 and s.train_outside == (1, 1)
    with pytest.raises(DataError, match="equal"):
        split_from_distances(np.ones(5))


def _rot6d_np(x):
    a1, a2 = x[0::2], x[1::2]
    b1 = a1 / np.linalg.norm(a1)
    b2 = a2 - (b1 @ a2) * b1
    b2 /= np.linalg.norm(b2)
    return np.stack([b1, b2, np.cross(b1, b2)], 1)


@pytest.fixture(scope="module")
def bodies():
    neutral = ToyBody(0)
    g = torch.Generator().manual_seed(5)
    neutral.mean_params = {
        "pose": torch.randn(144, generator=g) * 0.3 + torch.tensor([1.0, 0, 0, 1, 0, 0]).repeat(24),
        "shape": torch.randn(10, generator=g),
        "cam": torch.tensor([0.9, 0, 0]),
    }
    return GenderedBodies(neutral, ToyBody(1), ToyBody(2))


def test_vertex_distance_direct(rng, bodies):
    n = 9
    pose = rng.normal(0, 0.4, (n, 72))
    betas = rng.normal(0, 1, (n, 10))
    gender = np.array([-1, 0, 1, 1, 0, -1, 1, 0, 0], np.int8)
    got = vertex_distances(bodies, pose, betas, gender, chunk=4)
    mp = bodies.neutral.mean_params
    mean_rot = np.stack(
        [_rot6d_np(mp["pose"].double().numpy()[6 * j : 6 * j + 6]) for j in range(24)]
    )
    ref = (
        bodies.neutral(
            betas=mp["shape"][None].float(), pose=torch.tensor(mean_rot[None], dtype=torch.float32)
        )
        .vertices[0]
        .numpy()
    )
    from scipy.spatial.transform import Rotation

    for i in range(n):
        body = {-1: bodies.neutral, 0: bodies.by_gender["male"], 1: bodies.by_gender["female"]}[
            int(gender[i])
        ]
        rot = Rotation.from_rotvec(pose[i].reshape(24, 3)).as_matrix()
        v = (
            body(
                betas=torch.tensor(betas[i : i + 1], dtype=torch.float32),
                pose=torch.tensor(rot[None], dtype=torch.float32),
            )
            .vertices[0]
            .numpy()
        )
        want = np.mean(np.linalg.norm(v - ref, axis=1)) * 1000
        assert got[i] == pytest.approx(want, rel=1e-4)


def test_geodesic_distance_vs_scipy(rng, bodies):
    from scipy.spatial.transform import Rotation

    pose = rng.normal(0, 0.5, (5, 72))
    got = geodesic_distances(bodies.neutral, pose)
    mp = bodies.neutral.mean_params["pose"].double().numpy()
    for i in range(5):
        angles = []
        for j in range(24):
            r = Rotation.from_rotvec(pose[i, 3 * j : 3 * j + 3]).as_matrix()
            rel = Rotation.from_matrix(r.T @ _rot6d_np(mp[6 * j : 6 * j + 6]))
            angles.append(np.degrees(rel.magnitude()))
        assert got[i] == pytest.approx(np.mean(angles), abs=2e-3)


def test_make_save_load_plot(tmp_path, rng, bodies):
    arrs = spin_arrays(40, rng, "3dpw")
    np.savez(tmp_path / "3dpw_test.npz", **arrs)
    train = spin_arrays(30, rng, "h36m")
    train["has_smpl"] = np.r_[np.ones(25), np.zeros(5)]
    np.savez(tmp_path / "h36m_train.npz", **train)
    test = read_spin_npz(tmp_path / "3dpw_test.npz")
    s = make_split(test, bodies, train_labels=read_spin_npz(tmp_path / "h36m_train.npz"))
    assert s.counts.sum() == 40 and s.train_counts.sum() == 25 and s.body == "toy"
    save_split(tmp_path / "split.npz", s)
    back = load_split(tmp_path / "split.npz", n=40)
    np.testing.assert_array_equal(back.region, s.region)
    np.testing.assert_array_equal(back.train_counts, s.train_counts)
    assert back.metric == "vertex" and back.units == "mm"
    with pytest.raises(DataError, match="has 40 samples but the test set has 41"):
        load_split(tmp_path / "split.npz", n=41)
    plot_split(back, tmp_path / "split.png")
    assert (tmp_path / "split.png").read_bytes()[:4] == b"\x89PNG"


def test_split_job_with_two_training_files(tmp_path, rng, bodies):
    from ihmr.pose.jobs import split_job

    np.savez(tmp_path / "3dpw_test.npz", **spin_arrays(30, rng, "3dpw"))
    np.savez(tmp_path / "h36m_train.npz", **spin_arrays(20, rng, "h36m"))
    np.savez(tmp_path / "mpi_inf_3dhp_train.npz", **spin_arrays(15, rng, "mpi_inf_3dhp"))
    paths = split_job(
        tmp_path / "3dpw_test.npz",
        tmp_path / "out",
        n_regions=8,
        bodies=bodies,
        train=[tmp_path / "h36m_train.npz", tmp_path / "mpi_inf_3dhp_train.npz"],
    )
    s = load_split(paths["split"], n=30)
    assert paths["split"].name == "split.npz" and paths["plot"].suffix == ".png"
    assert s.n_regions == 8 and s.train_counts.sum() == 35
