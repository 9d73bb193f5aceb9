"""Where body files live, how they are read, and what a valid body looks like.

Real SMPL files are licensed: the user downloads them from https://smpl.is.tue.mpg.de and points
``ihmr`` at their folder with the ``body.smpl_dir`` config key or the ``IHMR_SMPL_DIR``
environment variable. Expected layout of that folder::

    SMPL_NEUTRAL.pkl | SMPL_NEUTRAL.npz     (also SMPL_MALE.*, SMPL_FEMALE.* for ground truth)
    J_regressor_h36m.npy                    (17, 6890)
    J_regressor_extra.npy                   (9, 6890)
    smpl_mean_params.npz                    pose (144,), shape (10,), cam (3,)

The official ``.pkl`` files hold chumpy objects; chumpy does not run on current Python/numpy and
a pickle can execute code, so they are read with :class:`SafeSmplUnpickler`, which turns chumpy
and scipy.sparse objects into plain numpy arrays and refuses every other global.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AssetNotFoundError, ConfigError, DataError
from .constants import (
    GENDERS,
    NUM_BETAS,
    NUM_JOINTS,
    NUM_POSE_FEATURES,
    SMPL_NUM_VERTICES,
    SMPL_PARENTS,
    SMPL_VERTEX_JOINT_IDS,
)

SMPL_URL = "https://smpl.is.tue.mpg.de"
ENV_VAR = "IHMR_SMPL_DIR"
COMPANION_FILES = ("J_regressor_h36m.npy", "J_regressor_extra.npy", "smpl_mean_params.npz")
LAYOUT = (
    "SMPL_NEUTRAL.pkl or .npz (and SMPL_MALE / SMPL_FEMALE), J_regressor_h36m.npy, "
    "J_regressor_extra.npy, smpl_mean_params.npz"
)


@dataclass
class BodyConfig:
    """Which body model to use (embed as ``body:`` in a command's config)."""

    smpl_dir: str | None = None
    """Folder with the licensed SMPL files; None: ``$IHMR_SMPL_DIR``, else the open body."""
    chunk_size: int = 1024
    """Samples per chunk of the vertex forward (bounds memory: about 0.35 GB per 1,024)."""


def resolve_smpl_dir(model_dir: str | os.PathLike | None = None) -> Path | None:
    """``model_dir`` if given, else ``$IHMR_SMPL_DIR`` if set, else None (use the open body)."""
    if model_dir is None:
        model_dir = os.environ.get(ENV_VAR) or None
    return None if model_dir is None else Path(model_dir).expanduser()


def open_body_paths() -> tuple[Path, Path]:
    """Paths of the bundled open body and its mean parameters (they may not exist yet)."""
    root = Path(str(files("ihmr.assets"))) / "open_body"
    return root / "open_body.npz", root / "mean_params.npz"


def _missing(name: str, folder: Path, what: str) -> AssetNotFoundError:
    return AssetNotFoundError(
        f"{what} {name!r} not found in {str(folder)!r}. Expected layout of the SMPL folder: "
        f"{LAYOUT}. Register and download the SMPL model at {SMPL_URL} (the companion files come "
        f"with SPIN's data), then set {ENV_VAR} or body.smpl_dir to that folder; unset both to "
        "use the bundled open body."
    )


def smpl_model_path(folder: Path, gender: str) -> Path:
    """``SMPL_<GENDER>.npz`` (preferred: no pickle) or ``.pkl`` in ``folder``; raise if neither."""
    if gender not in GENDERS:
        raise ConfigError(f"gender must be one of {list(GENDERS)}, got {gender!r}")
    stem = f"SMPL_{gender.upper()}"
    for ext in (".npz", ".pkl"):
        if (folder / (stem + ext)).is_file():
            return folder / (stem + ext)
    raise _missing(stem + ".pkl", folder, "SMPL model file")


def companion_path(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise _missing(name, folder, "companion file")
    return path


def inventory(model_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Which body files exist where.

    Returns ``{"smpl_dir", "source", "files": [(name, path|None)], "body"}``; ``body`` says
    which body :func:`ihmr.body.load_body` would use for the neutral model.
    """
    folder = resolve_smpl_dir(model_dir)
    source = "argument" if model_dir is not None else (ENV_VAR if folder is not None else None)
    rows: list[tuple[str, str | None]] = []
    if folder is not None:
        for g in GENDERS:
            stem = f"SMPL_{g.upper()}"
            hit = next(
                (folder / (stem + e) for e in (".npz", ".pkl") if (folder / (stem + e)).is_file()),
                None,
            )
            rows.append((stem + ".pkl/.npz", None if hit is None else str(hit)))
        for name in COMPANION_FILES:
            rows.append((name, str(folder / name) if (folder / name).is_file() else None))
    body_npz, mean_npz = open_body_paths()
    rows.append(("open_body.npz (bundled)", str(body_npz) if body_npz.is_file() else None))
    rows.append(("mean_params.npz (bundled)", str(mean_npz) if mean_npz.is_file() else None))
    if folder is None:
        body = "open body (no SMPL folder configured)"
    else:
        have = dict(rows)
        ok = have.get("SMPL_NEUTRAL.pkl/.npz") and all(have.get(n) for n in COMPANION_FILES)
        body = f"SMPL from {folder}" if ok else "none: the configured SMPL folder is incomplete"
    return {
        "smpl_dir": None if folder is None else str(folder),
        "source": source,
        "files": rows,
        "body": body,
    }


# --------------------------------------------------------------------------- safe unpickling


class _ChumpyStandIn:
    """Inert stand-in for chumpy classes: keeps the pickled state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _SparseStandIn(_ChumpyStandIn):
    """Inert stand-in for scipy.sparse matrices; rebuilt densely from the pickled fields."""

    fmt = "csc"


class _CsrStandIn(_SparseStandIn):
    fmt = "csr"


def _numpy_global(name: str) -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar}[name]


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # copyreg._reconstructor, limited to the classes this unpickler hands out.
    if base is object and isinstance(cls, type) and issubclass(cls, _ChumpyStandIn):
        return cls()
    if base is np.ndarray and cls is np.ndarray:
        return np.ndarray.__new__(cls, state)
    raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r} from base {base!r}")


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_NUMPY = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
_SPARSE = {"csc_matrix": _SparseStandIn, "csr_matrix": _CsrStandIn}


class SafeSmplUnpickler(pickle.Unpickler):
    """Unpickler for SMPL ``.pkl`` files that only knows numpy, chumpy and scipy.sparse.

    chumpy classes become :class:`_ChumpyStandIn` (their ``x`` array is kept), sparse matrices
    become :class:`_SparseStandIn`; :func:`plain` turns both into numpy arrays. Any other global
    (``os.system``, ``builtins.eval``, ...) raises :class:`pickle.UnpicklingError` naming it,
    before anything runs.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        if module.startswith("scipy.sparse") and name in _SPARSE:
            return _SPARSE[name]
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in (
            "_reconstruct",
            "scalar",
        ):
            return _numpy_global(name)
        if (module, name) in _NUMPY:
            return _NUMPY[(module, name)]
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _safe_reconstructor
        if module in ("__builtin__", "builtins") and name == "object":
            return object
        if module == "_codecs" and name == "encode":  # how Python 3 writes bytes at protocol 2
            return _latin1_encode
        raise pickle.UnpicklingError(
            f"refusing global {module}.{name} in an SMPL pickle: only numpy arrays, chumpy arrays "
            "and scipy sparse matrices are allowed (a pickle can run code). Convert the file to "
            ".npz on a trusted machine if it is genuine."
        )


def _sparse_to_dense(obj: _SparseStandIn) -> np.ndarray:
    st = obj.state if isinstance(obj.state, dict) else {}
    try:
        shape = tuple(int(s) for s in st.get("_shape", st.get("shape")))
        data, indices, indptr = (np.asarray(plain(st[k])) for k in ("data", "indices", "indptr"))
    except (KeyError, TypeError) as exc:
        raise DataError(f"unreadable sparse matrix in SMPL pickle (fields {sorted(st)})") from exc
    out = np.zeros(shape, dtype=np.float64)
    major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    if obj.fmt == "csc":
        np.add.at(out, (indices, major), data)
    else:
        np.add.at(out, (major, indices), data)
    return out


def plain(obj: Any) -> Any:
    """Replace stand-ins by numpy arrays, recursively through dicts, lists and tuples."""
    if isinstance(obj, _SparseStandIn):
        return _sparse_to_dense(obj)
    if isinstance(obj, _ChumpyStandIn):
        st = obj.state
        if isinstance(st, dict) and "x" in st:
            return np.asarray(plain(st["x"]))
        raise DataError("a chumpy object in the SMPL pickle has no 'x' array; cannot convert it")
    if isinstance(obj, dict):
        return {
            (k.decode("latin1") if isinstance(k, bytes) else k): plain(v) for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    return obj


def load_smpl_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Read an official SMPL ``.pkl`` safely into a dict of numpy arrays (see module docstring)."""
    with open(path, "rb") as f:
        try:
            raw = SafeSmplUnpickler(f, encoding="latin1").load()
        except pickle.UnpicklingError as exc:
            raise DataError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a dict of SMPL arrays, got {type(raw).__name__}")
    return plain(raw)


def read_body_file(path: str | os.PathLike) -> dict[str, Any]:
    """SMPL-layout body from ``.npz`` (no pickles allowed) or an official ``.pkl``."""
    path = Path(path)
    if path.suffix == ".pkl":
        return load_smpl_pickle(path)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def read_mean_params(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """SPIN-style mean parameters: ``pose`` (144,) 6-D, ``shape`` (10,), ``cam`` (3,)."""
    with np.load(path, allow_pickle=False) as z:
        out = {
            k: np.asarray(z[k], dtype=np.float32).reshape(-1)
            for k in ("pose", "shape", "cam")
            if k in z.files
        }
    want = {"pose": 144, "shape": NUM_BETAS, "cam": 3}
    for key, n in want.items():
        if key not in out or out[key].shape != (n,):
            got = "missing" if key not in out else f"shape {out[key].shape}"
            raise DataError(f"{path}: {key!r} must have {n} values, got {got}")
    return out


def validate_body(d: dict[str, Any], source: str) -> dict[str, np.ndarray]:
    """Check an SMPL-layout dict and return it normalised (dense float arrays, parents, faces)."""

    def need(key: str) -> np.ndarray:
        if key not in d:
            raise DataError(
                f"{source}: body file lacks {key!r}; SMPL layout needs v_template, "
                "shapedirs, posedirs, J_regressor, weights, kintree_table, f"
            )
        return np.asarray(d[key])

    v = need("v_template").astype(np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise DataError(f"{source}: v_template must be (V, 3), got {v.shape}")
    n = v.shape[0]
    sd = need("shapedirs")
    if sd.ndim != 3 or sd.shape[:2] != (n, 3) or sd.shape[2] < NUM_BETAS:
        raise DataError(f"{source}: shapedirs must be ({n}, 3, >={NUM_BETAS}), got {sd.shape}")
    pd = need("posedirs")
    if pd.shape not in ((n, 3, NUM_POSE_FEATURES), (3 * n, NUM_POSE_FEATURES)):
        raise DataError(f"{source}: posedirs must be ({n}, 3, 207), got {pd.shape}")
    out = {
        "v_template": v,
        "shapedirs": sd[:, :, :NUM_BETAS].astype(np.float64),
        "posedirs": pd.reshape(n, 3, NUM_POSE_FEATURES).astype(np.float64),
        "J_regressor": _matrix(need("J_regressor"), (NUM_JOINTS, n), "J_regressor", source),
        "weights": _matrix(need("weights"), (n, NUM_JOINTS), "weights", source),
        "f": need("f").astype(np.int64),
    }
    parents = need("kintree_table").astype(np.int64)[0].copy()
    parents[0] = -1  # stored as 4294967295 in the official files
    if tuple(parents) != SMPL_PARENTS:
        raise DataError(
            f"{source}: kintree_table parents {parents.tolist()} differ from SMPL's "
            f"{list(SMPL_PARENTS)}"
        )
    out["parents"] = parents
    if out["f"].ndim != 2 or out["f"].shape[1] != 3 or out["f"].min() < 0 or out["f"].max() >= n:
        raise DataError(f"{source}: f must be (F, 3) vertex indices < {n}")
    for key, rows in (("J_regressor_h36m", 17), ("J_regressor_extra", 9)):
        if key in d:
            out[key] = _matrix(d[key], (rows, n), key, source)
    if "vertex_joint_ids" in d:
        ids = np.asarray(d["vertex_joint_ids"]).astype(np.int64).reshape(-1)
        if ids.shape != (21,) or ids.min() < 0 or ids.max() >= n:
            raise DataError(f"{source}: vertex_joint_ids must be 21 vertex ids < {n}")
        out["vertex_joint_ids"] = ids
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        if not np.isfinite(out[key]).all():
            raise DataError(f"{source}: {key} contains NaN or inf")
    return out


def _matrix(x: Any, shape: tuple[int, int], key: str, source: str) -> np.ndarray:
    if hasattr(x, "toarray"):  # scipy.sparse from a caller's own loader
        x = x.toarray()
    x = np.asarray(x, dtype=np.float64)
    if x.shape != shape:
        raise DataError(f"{source}: {key} must have shape {shape}, got {x.shape}")
    return x


def to_smplx(data: dict[str, Any], gender: str = "neutral", dtype: Any = None):
    """An ``smplx.SMPLLayer`` of a validated body dict, via ``data_struct=`` (stdout silenced).

    Its 21 extra vertex joints use the body's ``vertex_joint_ids``, SMPL's ids for a 6,890-vertex
    body, else vertex 0 (smplx needs some vertex; :class:`ihmr.body.BodyModel` uses joints then).
    """
    import smplx
    from smplx.utils import Struct

    parents = np.asarray(data["parents"], np.int64)
    struct = Struct(
        v_template=np.asarray(data["v_template"]),
        shapedirs=np.asarray(data["shapedirs"]),
        posedirs=np.asarray(data["posedirs"]),
        J_regressor=np.asarray(data["J_regressor"]),
        weights=np.asarray(data["weights"]),
        f=np.asarray(data["f"]),
        kintree_table=np.stack([parents, np.arange(len(parents))]),
    )
    n = len(struct.v_template)
    if "vertex_joint_ids" in data:
        ids = [int(i) for i in data["vertex_joint_ids"]]
    else:
        ids = list(SMPL_VERTEX_JOINT_IDS) if n == SMPL_NUM_VERTICES else [0] * 21
    names = (
        "nose",
        "reye",
        "leye",
        "rear",
        "lear",
        "LBigToe",
        "LSmallToe",
        "LHeel",
        "RBigToe",
        "RSmallToe",
        "RHeel",
        "lthumb",
        "lindex",
        "lmiddle",
        "lring",
        "lpinky",
        "rthumb",
        "rindex",
        "rmiddle",
        "rring",
        "rpinky",
    )
    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note about 10 betas
        return smplx.SMPLLayer(
            model_path="",
            data_struct=struct,
            gender=gender,
            num_betas=NUM_BETAS,
            vertex_ids=dict(zip(names, ids, strict=True)),
            dtype=dtype or torch.float32,
        )
