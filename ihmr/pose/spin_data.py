"""Readers for SPIN's published label files, validated on open.

Formats (nkolot/SPIN, ``datasets/preprocess/*.py``; docs/protocols.md).
``dataset_extras/<name>.npz`` holds per sample:

========== ============= ==================================================================
key        shape         meaning
========== ============= ==================================================================
imgname    (N,)          image path relative to the dataset root (unicode strings)
center     (N, 2)        crop centre in pixels
scale      (N,)          crop size / 200 px (SPIN's ``scale``)
part       (N, 24, 3)    2-D keypoints [x, y, visibility] in pixels, SPIN's 24 GT joints
openpose   (N, 25, 3)    OpenPose 2-D keypoints [x, y, confidence]
S          (N, 24, 4)    3-D joints [x, y, z, confidence] in metres
pose       (N, 72)       SMPL pose, axis-angle (radians), global orientation first
shape      (N, 10)       SMPL betas
has_smpl   (N,)          1 where ``pose``/``shape`` are valid
gender     (N,)          'm' / 'f'
========== ============= ==================================================================

3DPW test keeps imgname, center, scale, pose, shape, gender; SPIN's Human3.6M evaluation files
``h36m_valid_protocol1.npz`` / ``h36m_valid_protocol2.npz`` keep imgname, center, scale, S (read as
dataset ``h36m_valid``). Static fits (``static_fits/<name>_fits.npy``) are (N, 82) = pose 72 +
betas 10.

Only the keys a file of its dataset needs are required (:data:`REQUIRED_KEYS`); every other key
is optional with a stated default: ``part`` / ``openpose`` / ``S`` absent = zeros with visibility
or confidence 0 (no supervision from them), ``pose`` / ``shape`` absent = zeros with ``has_smpl``
0, ``has_smpl`` absent = 1 exactly when ``pose`` is present, ``gender`` absent = unknown (-1, the
neutral body). The dataset comes from the file name (:func:`infer_dataset`), SPIN's own names
included (``hr-lspet_train.npz`` is lspet, ``coco_2014_train.npz`` coco).

Every reader raises :class:`~ihmr.errors.DataError` naming the file, the key and the expected
shape on a missing key, a wrong shape, a length mismatch or a non-finite value. Files are read
with ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, shape_str
from ..geometry import axis_angle_to_matrix
from ..io import read_npz

#: expected trailing shape of every known key (N is the leading dimension)
KEY_SHAPES: dict[str, tuple[int, ...]] = {
    "imgname": (),
    "center": (2,),
    "scale": (),
    "part": (24, 3),
    "openpose": (25, 3),
    "S": (24, 4),
    "pose": (72,),
    "shape": (10,),
    "has_smpl": (),
    "gender": (),
}

_BASE = ("imgname", "center", "scale")
#: keys each SPIN dataset file must hold (the others are optional)
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "h36m": _BASE + ("part", "S"),
    "mpi_inf_3dhp": _BASE + ("part", "S"),
    "lsp": _BASE + ("part",),
    "lspet": _BASE + ("part",),
    "mpii": _BASE + ("part",),
    "coco": _BASE + ("part",),
    "3dpw": _BASE + ("pose", "shape", "gender"),
    "h36m_valid": _BASE + ("S",),
}
DATASETS = tuple(REQUIRED_KEYS)
#: SPIN file-name stems that do not start with their dataset's name
FILE_ALIASES: dict[str, str] = {
    "hr-lspet": "lspet",
    "h36m_valid_protocol1": "h36m_valid",
    "h36m_valid_protocol2": "h36m_valid",
}


def infer_dataset(path: str | os.PathLike) -> str | None:
    """Dataset name from a SPIN file name, or None.

    ``h36m_train.npz`` -> ``h36m``, ``hr-lspet_train.npz`` -> ``lspet``,
    ``h36m_valid_protocol2.npz`` -> ``h36m_valid``.
    """
    stem = Path(path).name.split(".")[0].lower()
    names = {**{d: d for d in DATASETS}, **FILE_ALIASES}
    for prefix in sorted(names, key=len, reverse=True):  # 'lspet' before 'lsp', longest first
        if stem == prefix or stem.startswith(prefix + "_"):
            return names[prefix]
    return None


@dataclasses.dataclass
class SpinLabels:
    """One SPIN dataset file as tensors. Missing optional entries are zeros with validity flags.

    Attributes (N samples): ``imgname`` (N,) str; ``center`` (N, 2) px; ``scale`` (N,);
    ``pose`` (N, 72) axis-angle rad; ``betas`` (N, 10); ``has_smpl`` (N,) bool;
    ``keypoints2d`` (N, 24, 3) px + visibility; ``openpose`` (N, 25, 3); ``keypoints3d``
    (N, 24, 4) m + confidence; ``gender`` (N,) int8 (0 male, 1 female, -1 unknown).
    """

    dataset: str
    path: str
    imgname: np.ndarray
    center: Any
    scale: Any
    pose: Any
    betas: Any
    has_smpl: Any
    keypoints2d: Any
    openpose: Any
    keypoints3d: Any
    gender: Any

    def __len__(self) -> int:
        return len(self.imgname)

    def rotmats(self):
        """(N, 24, 3, 3) rotation matrices of ``pose`` (zeros rows give identities)."""
        return axis_angle_to_matrix(self.pose.reshape(-1, 24, 3))

    def fingerprint(self) -> str:
        """Short hash of the sample list (count + image names), to pair labels with features."""
        return labels_fingerprint(self.imgname)

    def subset(self, index) -> "SpinLabels":
        """Rows ``index`` (an int array or slice) of every per-sample field."""
        idx = np.arange(len(self))[index]
        t = torch.as_tensor(idx, dtype=torch.long)
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                out[f.name] = v[idx]
            elif hasattr(v, "index_select"):
                out[f.name] = v.index_select(0, t)
            else:
                out[f.name] = v
        return SpinLabels(**out)


def labels_fingerprint(imgname: np.ndarray) -> str:
    h = hashlib.sha256(str(len(imgname)).encode())
    for name in imgname:
        h.update(str(name).encode() + b"\0")
    return h.hexdigest()[:16]


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(
            f"SPIN label file {str(path)!r} does not exist; pass the path to a "
            "dataset_extras/*.npz file"
        )

    return read_npz(path, "SPIN label file")


def _validate(path: Path, data: dict[str, np.ndarray], required: tuple[str, ...]) -> int:
    missing = [k for k in required if k not in data]
    if missing:
        raise DataError(
            f"{str(path)!r}: missing key(s) {missing}; a SPIN file of this dataset "
            f"needs {list(required)} (found {sorted(data)})"
        )
    n = len(data["imgname"]) if data["imgname"].ndim == 1 else None
    if n is None:
        raise DataError(
            f"{str(path)!r}: key 'imgname' must have shape (N,), got "
            f"{shape_str(data['imgname'].shape)}"
        )
    for key, trail in KEY_SHAPES.items():
        if key not in data:
            continue
        arr = data[key]
        want = (n,) + trail
        if arr.shape != want:
            raise DataError(
                f"{str(path)!r}: key {key!r} must have shape {shape_str(want)} "
                f"(N = {n} from 'imgname'), got {shape_str(arr.shape)}"
            )
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            bad = np.unique(np.nonzero(~np.isfinite(arr.reshape(n, -1)))[0])
            raise DataError(
                f"{str(path)!r}: key {key!r} holds non-finite values in {len(bad)} "
                f"sample(s), first rows {bad[:5].tolist()}; repair or drop them"
            )
    if "gender" in data:
        g = np.char.lower(data["gender"].astype(str))
        bad = ~np.isin(g, ["m", "f", "male", "female", "n", "neutral"])
        if bad.any():
            raise DataError(
                f"{str(path)!r}: key 'gender' must hold 'm' or 'f', got "
                f"{sorted(set(g[bad].tolist()))[:5]}"
            )
    return n


def _gender_codes(g: np.ndarray) -> np.ndarray:
    g = np.char.lower(g.astype(str))
    out = np.full(len(g), -1, dtype=np.int8)
    out[np.isin(g, ["m", "male"])] = 0
    out[np.isin(g, ["f", "female"])] = 1
    return out


def read_spin_npz(path: str | os.PathLike, dataset: str | None = None) -> SpinLabels:
    """Read and validate a SPIN ``dataset_extras`` file (any of :data:`DATASETS`).

    ``dataset`` defaults to the name inferred from the file name; an unknown name only requires
    ``imgname``, ``center`` and ``scale``. Absent optional keys become zeros: ``has_smpl`` is 0
    without ``pose``, keypoint visibilities/confidences are 0 without ``part``/``openpose``/``S``.
    """
    path = Path(path)
    dataset = dataset or infer_dataset(path) or path.stem
    data = _load_npz(path)
    n = _validate(path, data, REQUIRED_KEYS.get(dataset, _BASE))

    def get(key: str, trail: tuple[int, ...]) -> torch.Tensor:
        if key in data:
            return torch.as_tensor(np.asarray(data[key], dtype=np.float32))
        return torch.zeros((n,) + trail)

    has_pose = "pose" in data
    if "has_smpl" in data:
        has_smpl = torch.as_tensor(np.asarray(data["has_smpl"]) > 0)
    else:
        has_smpl = torch.full((n,), has_pose, dtype=torch.bool)
    gender = _gender_codes(data["gender"]) if "gender" in data else np.full(n, -1, np.int8)
    return SpinLabels(
        dataset=dataset,
        path=str(path),
        imgname=data["imgname"].astype(str),
        center=get("center", (2,)),
        scale=get("scale", ()),
        pose=get("pose", (72,)),
        betas=get("shape", (10,)),
        has_smpl=has_smpl,
        keypoints2d=get("part", (24, 3)),
        openpose=get("openpose", (25, 3)),
        keypoints3d=get("S", (24, 4)),
        gender=torch.as_tensor(gender),
    )


def read_static_fits(path: str | os.PathLike, n: int | None = None):
    """Read SPIN static fits ``(N, 82)`` -> ``(pose (N, 72), betas (N, 10))`` float32 tensors.

    ``n``, when given, is the sample count of the matching dataset file (checked).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"static fits file {str(path)!r} does not exist; expected "
            "static_fits/<dataset>_fits.npy from SPIN's data release"
        )
    try:
        fits = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{str(path)!r} is not a readable .npy array: {exc}") from exc
    if fits.ndim != 2 or fits.shape[1] != 82:
        raise DataError(
            f"{str(path)!r}: static fits must have shape (N, 82) = pose 72 + betas "
            f"10, got {shape_str(fits.shape)}"
        )
    if n is not None and fits.shape[0] != n:
        raise DataError(
            f"{str(path)!r}: {fits.shape[0]} fits for a dataset file of {n} samples; "
            "use the fits file that belongs to this dataset file"
        )
    if not np.isfinite(fits).all():
        bad = np.unique(np.nonzero(~np.isfinite(fits))[0])
        raise DataError(
            f"{str(path)!r}: non-finite values in {len(bad)} fit(s), first rows {bad[:5].tolist()}"
        )
    fits = torch.as_tensor(fits.astype(np.float32))
    return fits[:, :72].contiguous(), fits[:, 72:].contiguous()


def with_static_fits(labels: SpinLabels, fits_path: str | os.PathLike) -> SpinLabels:
    """Labels whose pose/betas are SPIN's static fits, every fit taken as valid (no fitting-loss
    rule; training applies the release's rule instead: :mod:`ihmr.pose.fits`)."""
    pose, betas = read_static_fits(fits_path, n=len(labels))
    return dataclasses.replace(
        labels, pose=pose, betas=betas, has_smpl=torch.ones(len(labels), dtype=torch.bool)
    )
