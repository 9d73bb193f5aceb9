"""Reading training labels for a prior from ``.npy``, ``.npz`` (one key) or ``.csv`` (columns).

Labels come back as float64, (N,) for scalar labels and (N, d) otherwise: anything with more
dimensions is flattened per sample, e.g. SPIN ``pose`` (N, 72) stays (N, 72) and rotation matrices
(N, 24, 3, 3) become (N, 216). ``pose_to_rotmat`` turns axis-angle triples into row-major flattened
rotation matrices, (N, 3J) -> (N, 9J), the label representation of the IHMR prior
(mmhuman3d's ``rotmat.view(-1, 216)``).
"""

from __future__ import annotations

import csv
import difflib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, DataError, ShapeError, shape_str

FORMATS = (".npy", ".npz", ".csv")


def axis_angle_to_rotmat(aa: Any) -> np.ndarray:
    """Rodrigues' formula: axis-angle vectors (..., 3) -> rotation matrices (..., 3, 3), float64.

    ``R = I + a [r]x + b [r]x^2`` with ``theta = |r|``, ``a = sin(theta)/theta`` and
    ``b = (1 - cos(theta))/theta^2``; Taylor series below theta = 1e-4 keep it exact near 0.
    The rotation is active and right-handed (``R @ v`` rotates ``v`` by ``theta`` about ``r``).
    """
    r = np.asarray(aa, dtype=np.float64)
    if r.ndim < 1 or r.shape[-1] != 3:
        raise ShapeError(f"axis-angle must have shape (..., 3), got {shape_str(r.shape)}")
    t2 = (r * r).sum(-1)
    t = np.sqrt(t2)
    small = t < 1e-4
    ts = np.where(small, 1.0, t)
    a = np.where(small, 1.0 - t2 / 6.0, np.sin(ts) / ts)
    b = np.where(small, 0.5 - t2 / 24.0, (1.0 - np.cos(ts)) / (ts * ts))
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(r.shape[:-1] + (3, 3))
    return np.eye(3) + a[..., None, None] * k + b[..., None, None] * (k @ k)


def pose_to_rotmat_labels(pose: Any) -> np.ndarray:
    """Flattened axis-angle poses (N, 3J) (or (N, J, 3)) -> flattened rotation matrices (N, 9J)."""
    p = np.asarray(pose, dtype=np.float64)
    if p.ndim < 2:
        raise ShapeError(
            f"pose labels must have shape (N, 3J), e.g. SMPL (N, 72), got {shape_str(p.shape)}"
        )
    p = p.reshape(p.shape[0], -1)
    if p.shape[1] % 3:
        raise ShapeError(
            f"pose labels must hold axis-angle triples, (N, 3J), got "
            f"{shape_str(p.shape)}; drop --pose-to-rotmat for other labels"
        )
    n = p.shape[0]
    return axis_angle_to_rotmat(p.reshape(n, -1, 3)).reshape(n, -1)


def read_labels(
    path: str | os.PathLike,
    key: str | None = None,
    column: str | int | Sequence[str | int] | None = None,
    pose_to_rotmat: bool = False,
) -> np.ndarray:
    """Labels from a file: (N,) float64 for scalar labels, (N, d) otherwise.

    Args:
        path: ``.npy``; ``.npz`` (``key`` required when it holds more than one array); ``.csv``
            with a header row (``column`` by name or index, or several; required when it has
            more than one column).
        pose_to_rotmat: read axis-angle poses (N, 3J) and return rotation matrices (N, 9J).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(
            f"label file {str(path)!r}: unsupported format {suffix!r}; use one of {list(FORMATS)}"
        )
    if suffix != ".npz" and key is not None:
        raise ConfigError(f"key={key!r} only applies to .npz files; {path.name} is {suffix}")
    if suffix != ".csv" and column is not None:
        raise ConfigError(f"column={column!r} only applies to .csv files; {path.name} is {suffix}")
    if suffix == ".csv":
        arr = _read_csv(path, column)
    else:
        arr = _read_numpy(path, key)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise DataError(f"label file {str(path)!r} holds no labels (shape {shape_str(arr.shape)})")
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if pose_to_rotmat:
        return pose_to_rotmat_labels(arr if arr.ndim == 2 else arr[:, None])
    return arr


def _read_numpy(path: Path, key: str | None) -> np.ndarray:
    if path.suffix.lower() == ".npz" and not zipfile.is_zipfile(path):
        raise DataError(
            f"label file {str(path)!r} is not an .npz archive (numpy.savez format); "
            "check the file name and how it was written"
        )
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise DataError(
            f"label file {str(path)!r} is not a readable {path.suffix} file "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = list(data.files)
            if key is None:
                if len(keys) != 1:
                    raise DataError(
                        f"label file {str(path)!r} holds {len(keys)} arrays; choose "
                        f"one with key (--key), available: {keys}"
                    )
                key = keys[0]
            if key not in keys:
                close = difflib.get_close_matches(key, keys, n=1)
                raise DataError(
                    f"label file {str(path)!r} has no key {key!r}"
                    + (f" (did you mean {close[0]!r}?)" if close else "")
                    + f"; available: {keys}"
                )
            try:
                arr = data[key]
            except ValueError as exc:
                raise DataError(
                    f"label file {str(path)!r}: key {key!r} cannot be read without "
                    f"pickle ({exc}); store plain numeric arrays"
                ) from exc
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise DataError(
                    f"label file {str(path)!r}: key {key!r} is corrupt "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
        where = f"label file {str(path)!r}, key {key!r}"
    else:
        arr, where = data, f"label file {str(path)!r}"
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{where} must hold numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _read_csv(path: Path, column: Any) -> np.ndarray:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"label file {str(path)!r} is empty")
    header = [c.strip() for c in rows[0]]
    has_header = not all(_is_number(c) for c in header)
    body = rows[1:] if has_header else rows
    names = header if has_header else [str(i) for i in range(len(header))]
    if column is None:
        if len(names) != 1:
            raise DataError(
                f"label file {str(path)!r} has {len(names)} columns; choose one with "
                f"column (--column), available: {names}"
            )
        cols = [0]
    else:
        wanted = [column] if isinstance(column, (str, int)) else list(column)
        cols = []
        for c in wanted:
            if isinstance(c, str) and c in names:
                cols.append(names.index(c))
            elif isinstance(c, int) or (isinstance(c, str) and c.lstrip("-").isdigit()):
                i = int(c)
                if not -len(names) <= i < len(names):
                    raise DataError(
                        f"label file {str(path)!r}: column index {i} out of range "
                        f"for {len(names)} columns {names}"
                    )
                cols.append(i % len(names))
            else:
                close = difflib.get_close_matches(str(c), names, n=1)
                raise DataError(
                    f"label file {str(path)!r} has no column {c!r}"
                    + (f" (did you mean {close[0]!r}?)" if close else "")
                    + f"; available: {names}"
                )
    out = np.empty((len(body), len(cols)))
    first = 2 if has_header else 1
    for r, row in enumerate(body):
        for j, c in enumerate(cols):
            cell = row[c].strip() if c < len(row) else ""
            try:
                out[r, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"label file {str(path)!r}, line {r + first}, column "
                    f"{names[c]!r}: {cell!r} is not a number"
                ) from None
    return out[:, 0] if len(cols) == 1 else out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
