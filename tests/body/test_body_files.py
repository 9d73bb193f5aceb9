"""Locating and reading body files: the allow-listed unpickler, validation, load_body."""

from __future__ import annotations

import os
import pickle
import sys
import types
import warnings

import numpy as np
import pytest
import scipy.sparse
import torch

import ihmr.body as body_pkg
from ihmr.body import OpenBodyNotice, files, load_bodies, load_body
from ihmr.body.testing import mean_params_arrays, random_body_arrays, write_smpl_folder
from ihmr.errors import AssetNotFoundError, DataError


@pytest.fixture
def fake_chumpy():
    """A stand-in ``chumpy.ch.Ch`` in a temporary module, removed again after pickling."""
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._parents = {}

        def __getstate__(self):  # like chumpy: the __dict__ with caches emptied
            return dict(self.__dict__, _cache={})

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch, pkg.ch = Ch, mod
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": pkg, "chumpy.ch": mod})

    def dumps(obj, protocol=2):
        return pickle.dumps(obj, protocol=protocol)

    yield Ch, dumps
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


def _smpl_pickle_dict(Ch, data):
    return {
        "v_template": Ch(data["v_template"]),
        "shapedirs": Ch(data["shapedirs"]),
        "posedirs": data["posedirs"],
        "J_regressor": scipy.sparse.csc_matrix(data["J_regressor"]),
        "weights": Ch(data["weights"]),
        "kintree_table": data["kintree_table"],
        "f": data["f"],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_pickle_loads_without_chumpy(tmp_path, fake_chumpy, protocol):
    Ch, dumps = fake_chumpy
    data = random_body_arrays(50, seed=2)
    blob = dumps(_smpl_pickle_dict(Ch, data), protocol)
    for k in ("chumpy", "chumpy.ch"):
        del sys.modules[k]  # chumpy is gone: only our unpickler can read it now
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(blob)
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(blob)
    got = files.load_smpl_pickle(path)
    for key in ("v_template", "shapedirs", "weights", "J_regressor", "posedirs", "f"):
        assert isinstance(got[key], np.ndarray), key
        np.testing.assert_array_equal(got[key], data[key], err_msg=key)
    assert got["bs_style"] == "lbs"


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"refusing global (posix|nt|os)\.system"):
        files.load_smpl_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        (eval, ("1 + 1",)),
        (os.getenv, ("HOME",)),
    ],
)
def test_other_globals_are_refused(tmp_path, payload):
    class Bad:
        def __reduce__(self):
            return payload

    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps([Bad()], protocol=2))
    with pytest.raises(DataError, match=r"refusing global (__builtin__\.eval|os\.getenv)"):
        files.load_smpl_pickle(path)


def test_pkl_body_equals_npz_body(tmp_path, fake_chumpy):
    Ch, dumps = fake_chumpy
    folder = write_smpl_folder(tmp_path / "smpl", n_vertices=60, genders=("neutral",))
    npz_body = load_body("neutral", folder, dtype=torch.float64)
    with np.load(folder / "SMPL_NEUTRAL.npz") as z:
        data = {k: z[k] for k in z.files}
    (folder / "SMPL_NEUTRAL.pkl").write_bytes(dumps(_smpl_pickle_dict(Ch, data)))
    os.remove(folder / "SMPL_NEUTRAL.npz")
    body_pkg._cache.clear()
    pkl_body = load_body("neutral", folder, dtype=torch.float64)
    betas, pose = torch.randn(3, 10, dtype=torch.float64), torch.randn(3, 72, dtype=torch.float64)
    torch.testing.assert_close(
        pkl_body(betas, pose).vertices, npz_body(betas, pose).vertices, rtol=0, atol=1e-6
    )  # the npz stores float32


def test_load_from_folder_and_env(tmp_path, monkeypatch):
    folder = write_smpl_folder(tmp_path / "smpl", n_vertices=40)
    body = load_body("female", folder)
    assert body.name == "SMPL_FEMALE" and body.gender == "female" and body.num_vertices == 40
    assert body.mean_params["pose"].shape == (144,) and body.mean_params["cam"][0] == 0.9
    monkeypatch.setenv(files.ENV_VAR, str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("error", OpenBodyNotice)
        env_body = load_body()
    assert env_body.name == "SMPL_NEUTRAL"
    bodies = load_bodies()
    assert {b.gender for b in bodies.values()} == {"neutral", "male", "female"}


def test_missing_files_name_file_layout_and_registration(tmp_path):
    folder = write_smpl_folder(tmp_path / "smpl", n_vertices=40, genders=("neutral",))
    with pytest.raises(AssetNotFoundError) as e:
        load_body("male", folder)
    msg = str(e.value)
    assert "SMPL_MALE.pkl" in msg and "https://smpl.is.tue.mpg.de" in msg
    assert "J_regressor_h36m.npy" in msg and "IHMR_SMPL_DIR" in msg
    os.remove(folder / "J_regressor_extra.npy")
    body_pkg._cache.clear()
    with pytest.raises(AssetNotFoundError, match=r"'J_regressor_extra.npy' not found"):
        load_body("neutral", folder)
    with pytest.raises(AssetNotFoundError, match="does not exist"):
        load_body("neutral", tmp_path / "nowhere")


def test_open_body_fallback_says_so_once(tmp_path, monkeypatch):
    np.savez(tmp_path / "open_body.npz", **random_body_arrays(30, seed=4))
    np.savez(tmp_path / "mean_params.npz", **mean_params_arrays())
    monkeypatch.delenv(files.ENV_VAR, raising=False)
    monkeypatch.setattr(
        files, "open_body_paths", lambda: (tmp_path / "open_body.npz", tmp_path / "mean_params.npz")
    )
    monkeypatch.setattr(body_pkg, "_notice_shown", False)
    monkeypatch.setattr(body_pkg, "_cache", {})
    with pytest.warns(OpenBodyNotice, match="open body"):
        first = load_body()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        second = load_body("male")
    assert not [w for w in rec if issubclass(w.category, OpenBodyNotice)]
    assert first.name == second.name == "open_body" and first.num_vertices == 30
    (tmp_path / "open_body.npz").unlink()
    monkeypatch.setattr(body_pkg, "_cache", {})
    with pytest.raises(AssetNotFoundError, match="open body is missing"):
        load_body()


def test_validation_errors():
    good = random_body_arrays(20)
    bad = dict(good, kintree_table=good["kintree_table"][:, ::-1])
    with pytest.raises(DataError, match="parents"):
        files.validate_body(bad, "x.npz")
    with pytest.raises(DataError, match=r"posedirs must be \(20, 3, 207\)"):
        files.validate_body(dict(good, posedirs=np.zeros((20, 3, 200))), "x.npz")
    missing = {k: v for k, v in good.items() if k != "weights"}
    with pytest.raises(DataError, match="lacks 'weights'"):
        files.validate_body(missing, "x.npz")
    with pytest.raises(DataError, match="NaN"):
        files.validate_body(dict(good, v_template=good["v_template"] * np.nan), "x.npz")


def test_inventory_reports_what_is_found(tmp_path):
    folder = write_smpl_folder(tmp_path / "smpl", n_vertices=20, genders=("neutral",))
    inv = files.inventory(folder)
    rows = dict(inv["files"])
    assert rows["SMPL_NEUTRAL.pkl/.npz"].endswith("SMPL_NEUTRAL.npz")
    assert rows["SMPL_MALE.pkl/.npz"] is None
    assert inv["body"].startswith("SMPL from") and inv["source"] == "argument"
    os.remove(folder / "smpl_mean_params.npz")
    assert "incomplete" in files.inventory(folder)["body"]
