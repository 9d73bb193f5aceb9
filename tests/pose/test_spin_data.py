"""SPIN readers: valid files in each format load; every kind of bad file is a clear DataError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.errors import DataError
from ihmr.pose.spin_data import DATASETS, read_spin_npz, read_static_fits, with_static_fits

from .helpers import spin_arrays


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_format_loads(tmp_path, rng, dataset):
    arrs = spin_arrays(7, rng, dataset)
    path = tmp_path / f"{dataset}_test.npz"
    np.savez(path, **arrs)
    lab = read_spin_npz(path)
    assert lab.dataset == dataset and len(lab) == 7
    assert lab.pose.shape == (7, 72) and lab.betas.shape == (7, 10)
    assert lab.keypoints2d.shape == (7, 24, 3) and lab.keypoints3d.shape == (7, 24, 4)
    np.testing.assert_allclose(lab.center.numpy(), arrs["center"], rtol=1e-6)
    has_pose = "pose" in arrs
    assert bool(lab.has_smpl.all()) == has_pose
    if has_pose:
        np.testing.assert_allclose(lab.pose.numpy(), arrs["pose"], rtol=1e-6, atol=1e-7)
    if dataset == "3dpw":
        want = (arrs["gender"] == "f").astype(np.int8)
        np.testing.assert_array_equal(lab.gender.numpy(), want)
    else:
        assert (lab.gender == -1).all()


def test_rotmats_are_rodrigues(tmp_path, rng):
    arrs = spin_arrays(4, rng, "3dpw")
    np.savez(tmp_path / "3dpw_test.npz", **arrs)
    lab = read_spin_npz(tmp_path / "3dpw_test.npz")
    from scipy.spatial.transform import Rotation

    want = Rotation.from_rotvec(arrs["pose"].reshape(-1, 3)).as_matrix().reshape(4, 24, 3, 3)
    np.testing.assert_allclose(lab.rotmats().numpy(), want, atol=1e-5)


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda a: a.pop("S"), ["missing", "'S'"]),
        (lambda a: a.update(part=a["part"][:, :20]), ["'part'", "(6, 24, 3)", "(6, 20, 3)"]),
        (lambda a: a.update(center=a["center"][:5]), ["'center'", "(6, 2)", "(5, 2)"]),
        (lambda a: a["pose"].__setitem__((2, 5), np.nan), ["'pose'", "non-finite", "[2]"]),
    ],
)
def test_bad_files_name_file_key_shape(tmp_path, rng, mutate, words):
    arrs = spin_arrays(6, rng, "h36m")
    mutate(arrs)
    path = tmp_path / "h36m_train.npz"
    np.savez(path, **arrs)
    with pytest.raises(DataError) as exc:
        read_spin_npz(path)
    msg = str(exc.value)
    assert "h36m_train.npz" in msg
    for w in words:
        assert w in msg


def test_object_arrays_refused(tmp_path, rng):
    arrs = spin_arrays(3, rng, "lsp")
    arrs["imgname"] = np.array(list(arrs["imgname"]), dtype=object)
    np.savez(tmp_path / "lsp.npz", **arrs)
    with pytest.raises(DataError, match="object arrays"):
        read_spin_npz(tmp_path / "lsp.npz")


def test_bad_gender_and_missing_file(tmp_path, rng):
    arrs = spin_arrays(3, rng, "3dpw")
    arrs["gender"] = np.array(["m", "x", "f"])
    np.savez(tmp_path / "3dpw_test.npz", **arrs)
    with pytest.raises(DataError, match="gender"):
        read_spin_npz(tmp_path / "3dpw_test.npz")
    with pytest.raises(DataError, match="does not exist"):
        read_spin_npz(tmp_path / "nope.npz")


def test_static_fits(tmp_path, rng):
    arrs = spin_arrays(5, rng, "coco")
    np.savez(tmp_path / "coco_2014_train.npz", **arrs)
    fits = rng.normal(size=(5, 82))
    np.save(tmp_path / "coco_fits.npy", fits)
    lab = with_static_fits(
        read_spin_npz(tmp_path / "coco_2014_train.npz"), tmp_path / "coco_fits.npy"
    )
    assert lab.dataset == "coco" and bool(lab.has_smpl.all())
    np.testing.assert_allclose(lab.pose.numpy(), fits[:, :72], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(lab.betas.numpy(), fits[:, 72:], rtol=1e-6, atol=1e-7)
    np.save(tmp_path / "short_fits.npy", fits[:4])
    with pytest.raises(DataError, match="4 fits for a dataset file of 5"):
        read_static_fits(tmp_path / "short_fits.npy", n=5)
    np.save(tmp_path / "wide_fits.npy", fits[:, :80])
    with pytest.raises(DataError, match=r"\(N, 82\)"):
        read_static_fits(tmp_path / "wide_fits.npy")


def test_subset_and_fingerprint(tmp_path, rng):
    np.savez(tmp_path / "mpii.npz", **spin_arrays(6, rng, "mpii"))
    lab = read_spin_npz(tmp_path / "mpii.npz")
    sub = lab.subset(np.array([4, 1]))
    assert list(sub.imgname) == [lab.imgname[4], lab.imgname[1]]
    assert torch.equal(sub.center, lab.center[[4, 1]])
    assert sub.fingerprint() != lab.fingerprint()
    assert lab.fingerprint() == read_spin_npz(tmp_path / "mpii.npz").fingerprint()


@pytest.mark.parametrize("protocol", [1, 2])
def test_h36m_valid_protocol_files_load(tmp_path, rng, protocol):
    # SPIN's datasets/preprocess/h36m.py writes exactly these four keys (S: (N, 24, 4), float64)
    n = 5
    arrs = {
        "imgname": np.array([f"images/S9_Directions_1.54138969_{i:06d}.jpg" for i in range(n)]),
        "center": rng.uniform(400, 600, (n, 2)),
        "scale": rng.uniform(2, 4, n),
        "S": np.concatenate([rng.normal(0, 0.3, (n, 24, 3)), np.zeros((n, 24, 1))], -1),
    }
    arrs["S"][:, 14:, 3] = 1.0  # SPIN fills only the H36M joints' confidences
    path = tmp_path / f"h36m_valid_protocol{protocol}.npz"
    np.savez(path, **arrs)
    lab = read_spin_npz(path)
    assert lab.dataset == "h36m_valid" and len(lab) == n
    np.testing.assert_allclose(lab.keypoints3d.numpy(), arrs["S"], rtol=1e-6, atol=1e-7)
    # the stated defaults of the absent keys
    assert float(lab.keypoints2d.abs().sum()) == 0 and float(lab.openpose.abs().sum()) == 0
    assert not lab.has_smpl.any() and (lab.gender == -1).all()
    arrs.pop("S")
    np.savez(path, **arrs)
    with pytest.raises(DataError, match="'S'"):
        read_spin_npz(path)


@pytest.mark.parametrize(
    "name, dataset",
    [
        ("hr-lspet_train.npz", "lspet"),
        ("coco_2014_train.npz", "coco"),
        ("lsp_dataset_original_train.npz", "lsp"),
        ("mpi_inf_3dhp_valid.npz", "mpi_inf_3dhp"),
        ("h36m_valid_protocol2.npz", "h36m_valid"),
        ("h36m_train.npz", "h36m"),
    ],
)
def test_spin_file_names_map_to_datasets(name, dataset):
    from ihmr.pose.spin_data import infer_dataset

    assert infer_dataset(name) == dataset


def test_hr_lspet_requires_part(tmp_path, rng):
    arrs = spin_arrays(4, rng, "lspet")
    np.savez(tmp_path / "hr-lspet_train.npz", **arrs)
    assert read_spin_npz(tmp_path / "hr-lspet_train.npz").dataset == "lspet"
    arrs.pop("part")
    np.savez(tmp_path / "hr-lspet_train.npz", **arrs)
    with pytest.raises(DataError, match="'part'"):
        read_spin_npz(tmp_path / "hr-lspet_train.npz")
