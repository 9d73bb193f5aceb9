"""Cached backbone features for stage 2: extract once, re-train the ``linear`` head in seconds.

The file is a plain ``.npz``: ``{split}_x`` (N, F) float32 or float16 pooled features (backbone in
eval mode, test transform), ``{split}_y`` (N,) ages, ``{split}_paths`` (N,) image paths for
``train``/``val``/``test``, and ``fingerprint`` (JSON: hash of the backbone weights and of the
CSV), so features from another model or split file are rejected.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..io import open_npz, save_npz
from ..training import Progress
from .data import SPLITS, AgeTable, make_dataset


def weights_fingerprint(state: dict[str, torch.Tensor], prefix: str = "backbone.") -> str:
    """SHA-256 (16 hex digits) of the tensors whose key starts with ``prefix``."""
    h = hashlib.sha256()
    for k in sorted(state):
        if k.startswith(prefix):
            h.update(k.encode())
            h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def file_fingerprint(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@torch.no_grad()
def extract_split(
    model: Any,
    table: AgeTable,
    root: str | os.PathLike,
    img_size: int,
    device: str,
    batch_size: int = 256,
    workers: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """(N, F) float32 features of ``table``'s images (backbone in eval mode, no augmentation)."""
    ds = make_dataset(table, root, img_size, train=False, check=False)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=workers
    )
    model.eval()
    out = []
    with Progress(len(loader), "features", enabled=progress) as bar:
        for x, _ in loader:
            out.append(model.features(x.to(device)).float().cpu())
            bar.advance()
    return torch.cat(out).numpy() if out else np.zeros((0, model.feature_dim), np.float32)


def save_features(
    path: str | os.PathLike,
    feats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    fingerprint: dict[str, str],
    dtype: str = "float32",
) -> Path:
    """Write ``{split: (x, y, paths)}`` and the fingerprint atomically."""
    arrays: dict[str, Any] = {"fingerprint": np.array(json.dumps(fingerprint))}
    for split, (x, y, paths) in feats.items():
        arrays[f"{split}_x"] = x.astype(dtype)
        arrays[f"{split}_y"] = y.astype(np.float32)
        arrays[f"{split}_paths"] = np.asarray(paths, dtype=str)
    return save_npz(path, **arrays)


def load_features(
    path: str | os.PathLike, expect: dict[str, str] | None = None, splits: tuple[str, ...] = SPLITS
) -> dict[str, Any]:
    """Read a feature file; ``expect`` (e.g. ``{"backbone": ...}``) must match its fingerprint.

    Returns ``{"fingerprint": dict, split: {"x": (N, F) tensor, "y": (N,) tensor,
    "paths": array}}``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"feature file {str(path)!r} does not exist; create it with `ihmr age extract-features`"
        )

    with open_npz(path, "feature file") as z:
        fp = json.loads(str(z["fingerprint"]))
        for key, value in (expect or {}).items():
            if fp.get(key) != value:
                raise DataError(
                    f"feature file {str(path)!r} was made with {key} {fp.get(key)!r}, but "
                    f"this run uses {value!r}; re-extract the features with the same "
                    "checkpoint and split file"
                )
        out: dict[str, Any] = {"fingerprint": fp}
        for s in splits:
            if f"{s}_x" not in z:
                raise DataError(f"feature file {str(path)!r} has no {s!r} split")
            out[s] = {
                "x": torch.from_numpy(z[f"{s}_x"]),
                "y": torch.from_numpy(z[f"{s}_y"]),
                "paths": z[f"{s}_paths"],
            }
    return out
