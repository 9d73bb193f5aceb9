"""read_labels for .npy/.npz/.csv and the local Rodrigues formula against scipy."""

from __future__ import annotations

import numpy as np
import pytest

from ihmr.errors import DataError, ShapeError
from ihmr.priors import axis_angle_to_rotmat, read_labels


def test_rodrigues_matches_scipy(rng):
    from scipy.spatial.transform import Rotation

    dirs = rng.normal(size=(40, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    corner = [0.0, 1e-12, 1e-8, 1e-5, 9.9e-5, 1e-4, 1e-3, np.pi - 1e-9, np.pi, 2.5 * np.pi]
    angles = np.concatenate([corner, rng.uniform(0, np.pi, 30)])
    aa = dirs * angles[:, None]
    r = axis_angle_to_rotmat(aa)
    np.testing.assert_allclose(r, Rotation.from_rotvec(aa).as_matrix(), rtol=0, atol=1e-14)
    eye = np.broadcast_to(np.eye(3), r.shape)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), eye, atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-14)


def test_rodrigues_batch_shapes_and_errors(rng):
    from scipy.spatial.transform import Rotation

    aa = rng.normal(size=(4, 5, 3))
    r = axis_angle_to_rotmat(aa)
    assert r.shape == (4, 5, 3, 3)
    np.testing.assert_allclose(r[2, 3], Rotation.from_rotvec(aa[2, 3]).as_matrix(), atol=1e-14)
    # a quarter turn about z maps x to y (active, right-handed)
    quarter = axis_angle_to_rotmat([0, 0, np.pi / 2])
    np.testing.assert_allclose(quarter @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    with pytest.raises(ShapeError, match=r"\(\.\.\., 3\)"):
        axis_angle_to_rotmat(np.zeros((2, 4)))


def test_read_npy_and_flatten(tmp_path, rng):
    np.save(tmp_path / "y.npy", np.arange(5, dtype=np.float32))
    y = read_labels(tmp_path / "y.npy")
    assert y.dtype == np.float64 and y.shape == (5,)
    rot = rng.normal(size=(6, 24, 3, 3))
    np.save(tmp_path / "rot.npy", rot)
    flat = read_labels(tmp_path / "rot.npy")
    assert flat.shape == (6, 216)
    np.testing.assert_array_equal(flat[4, 9 * 7 : 9 * 8], rot[4, 7].ravel())


def test_read_npz_keys(tmp_path):
    np.savez(tmp_path / "one.npz", age=np.array([1.0, 2.0]))
    np.testing.assert_array_equal(read_labels(tmp_path / "one.npz"), [1.0, 2.0])
    np.savez(tmp_path / "spin.npz", pose=np.zeros((3, 72)), shape=np.zeros((3, 10)))
    msg = r"holds 2 arrays; choose one with key.*\['pose', 'shape'\]"
    with pytest.raises(DataError, match=msg):
        read_labels(tmp_path / "spin.npz")
    with pytest.raises(DataError, match=r"no key 'poses' \(did you mean 'pose'\?\)"):
        read_labels(tmp_path / "spin.npz", key="poses")
    assert read_labels(tmp_path / "spin.npz", key="shape").shape == (3, 10)
    np.savez(tmp_path / "obj.npz", y=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="cannot be read without pickle"):
        read_labels(tmp_path / "obj.npz")
    np.savez(tmp_path / "str.npz", y=np.array(["a", "b"]))
    with pytest.raises(DataError, match="must hold numbers"):
        read_labels(tmp_path / "str.npz")


def test_pose_to_rotmat_matches_scipy(tmp_path, rng):
    from scipy.spatial.transform import Rotation

    pose = rng.normal(scale=0.5, size=(4, 72))
    np.savez(tmp_path / "spin.npz", pose=pose, shape=np.zeros((4, 10)))
    y = read_labels(tmp_path / "spin.npz", key="pose", pose_to_rotmat=True)
    ref = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(4, 216)
    np.testing.assert_allclose(y, ref, atol=1e-14)
    with pytest.raises(ShapeError, match="axis-angle triples"):
        read_labels(tmp_path / "spin.npz", key="shape", pose_to_rotmat=True)


def test_read_csv(tmp_path):
    rows = ["age,path,split", "30,x.jpg,train", "41.5,y.jpg,train", "", "7,z.jpg,val"]
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    np.testing.assert_array_equal(read_labels(tmp_path / "a.csv", column="age"), [30, 41.5, 7])
    with pytest.raises(DataError, match=r"3 columns; choose one.*\['age', 'path', 'split'\]"):
        read_labels(tmp_path / "a.csv")
    with pytest.raises(DataError, match=r"no column 'ages' \(did you mean 'age'\?\)"):
        read_labels(tmp_path / "a.csv", column="ages")
    with pytest.raises(DataError, match=r"line 2, column 'path': 'x.jpg' is not a number"):
        read_labels(tmp_path / "a.csv", column="path")
    (tmp_path / "b.csv").write_text("1.0,2.0\n3.0,4.0\n")  # no header: columns by index
    np.testing.assert_array_equal(read_labels(tmp_path / "b.csv", column=[1, 0]), [[2, 1], [4, 3]])
    (tmp_path / "c.csv").write_text("y\n1\nnan\n")
    assert np.isnan(read_labels(tmp_path / "c.csv")[1])  # NaN passes here; the fit rejects it


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_labels(tmp_path / "nope.npy")
    (tmp_path / "y.txt").write_text("1\n")
    with pytest.raises(DataError, match=r"unsupported format '\.txt'"):
        read_labels(tmp_path / "y.txt")
    (tmp_path / "bad.npy").write_text("garbage")
    with pytest.raises(DataError, match="not a readable .npy"):
        read_labels(tmp_path / "bad.npy")
    np.save(tmp_path / "y.npy", np.zeros(3))
    with pytest.raises(ValueError, match="only applies to .npz"):
        read_labels(tmp_path / "y.npy", key="y")
    np.save(tmp_path / "e.npy", np.zeros((0, 2)))
    with pytest.raises(DataError, match="holds no labels"):
        read_labels(tmp_path / "e.npy")
