"""Feature store: cached backbone features as float16 ``.npy`` shards plus a JSON index.

Layout of a store folder::

    index.json            format, dataset, count, feature_dim, views, shard_size, shards,
                          source (checkpoint path + fingerprint), labels_fingerprint, complete
    shard_00000.npy       (n, 1 + views, feature_dim) float16; view 0 is the un-augmented crop
    shard_00000.views.npz (only with views > 0) the augmented views' transformed labels

Shards are written atomically, so a shard file either holds all of its rows or does not exist;
``complete`` turns true only when every shard is there. A killed extraction resumes by writing the
missing shards. The fingerprints catch features paired with the wrong labels (a different sample
list) or made by a different backbone checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..errors import ConfigError, DataError, shape_str
from ..io import atomic_path, save_npz, write_json

FORMAT = "ihmr-features/1"
INDEX = "index.json"


def file_fingerprint(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """sha256 (first 16 hex digits) of a file's bytes: identifies a checkpoint exactly."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _shard_name(i: int) -> str:
    return f"shard_{i:05d}.npy"


def _plan(count: int, shard_size: int) -> list[dict[str, int | str]]:
    return [
        {"file": _shard_name(i), "start": s, "count": min(shard_size, count - s)}
        for i, s in enumerate(range(0, count, shard_size))
    ]


class FeatureStore:
    """Read side of a store: memory-mapped shards, metadata and consistency checks."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        index = self.path / INDEX
        if not index.is_file():
            raise DataError(
                f"{str(self.path)!r} is not a feature store (no {INDEX}); create one "
                "with `ihmr extract-features` or `ihmr demo-data`"
            )
        try:
            self.meta: dict[str, Any] = json.loads(index.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{str(index)!r} is not valid JSON: {exc}") from exc
        if self.meta.get("format") != FORMAT:
            raise DataError(
                f"{str(index)!r}: format {self.meta.get('format')!r}, expected {FORMAT!r}"
            )
        if not self.meta.get("complete"):
            done = sum((self.path / s["file"]).is_file() for s in self.meta["shards"])
            raise DataError(
                f"feature store {str(self.path)!r} is incomplete ({done} of "
                f"{len(self.meta['shards'])} shards); rerun the same "
                "`ihmr extract-features` command to resume it"
            )
        self._shards: list[np.ndarray] | None = None

    # metadata -----------------------------------------------------------------------------
    @property
    def dataset(self) -> str:
        return self.meta["dataset"]

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    @property
    def feature_dim(self) -> int:
        return int(self.meta["feature_dim"])

    @property
    def views(self) -> int:
        return int(self.meta.get("views", 0))

    @property
    def source_fingerprint(self) -> str:
        return self.meta["source"]["fingerprint"]

    @property
    def labels_fingerprint(self) -> str:
        return self.meta["labels_fingerprint"]

    def __len__(self) -> int:
        return self.count

    # data ---------------------------------------------------------------------------------
    def shards(self) -> list[np.ndarray]:
        """Memory-mapped shards, each (n, 1 + views, feature_dim) float16 (validated once)."""
        if self._shards is None:
            out = []
            for s in self.meta["shards"]:
                f = self.path / s["file"]
                if not f.is_file():
                    raise DataError(f"feature shard {str(f)!r} is missing; rerun extraction")
                arr = np.load(f, mmap_mode="r", allow_pickle=False)
                want = (s["count"], 1 + self.views, self.feature_dim)
                if arr.shape != want or arr.dtype != np.float16:
                    raise DataError(
                        f"feature shard {str(f)!r} has shape {shape_str(arr.shape)} "
                        f"{arr.dtype}, expected {shape_str(want)} float16"
                    )
                out.append(arr)
            self._shards = out
        return self._shards

    def array(self, view: int = 0) -> np.ndarray:
        """All features of one view as an in-memory (count, feature_dim) float16 array."""
        if not 0 <= view <= self.views:
            raise DataError(f"view must be in [0, {self.views}], got {view}")
        return np.concatenate([s[:, view] for s in self.shards()], axis=0)

    def tensor(self, view: int = 0, dtype=None, device=None):
        """:meth:`array` as a torch tensor (float32 by default) on ``device``."""
        t = torch.from_numpy(self.array(view))
        return t.to(device=device, dtype=dtype or torch.float32)

    def iter_batches(self, batch_size: int, view: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, features (b, feature_dim) float16)`` in sample order, one shard at a
        time (memory stays bounded by one batch)."""
        for s, arr in zip(self.meta["shards"], self.shards(), strict=True):
            for i in range(0, s["count"], batch_size):
                yield s["start"] + i, np.asarray(arr[i : i + batch_size, view])

    def view_labels(self) -> dict[str, np.ndarray]:
        """Transformed labels of the augmented views, concatenated over shards (views > 0)."""
        if not self.views:
            return {}
        parts: dict[str, list[np.ndarray]] = {}
        for s in self.meta["shards"]:
            f = self.path / s["file"].replace(".npy", ".views.npz")
            with np.load(f, allow_pickle=False) as z:
                for k in z.files:
                    parts.setdefault(k, []).append(z[k])
        return {k: np.concatenate(v) for k, v in parts.items()}

    # checks -------------------------------------------------------------------------------
    def check_labels(self, labels) -> None:
        """Raise :class:`DataError` unless ``labels`` (a SpinLabels) are the store's samples."""
        if len(labels) != self.count:
            raise DataError(
                f"feature store {str(self.path)!r} holds {self.count} samples but the "
                f"labels {labels.path!r} hold {len(labels)}; extract features for "
                "this label file"
            )
        fp = labels.fingerprint()
        if fp != self.labels_fingerprint:
            raise DataError(
                f"feature store {str(self.path)!r} was made for a different sample "
                f"list (labels fingerprint {self.labels_fingerprint}, these labels "
                f"{fp}); the image names or their order differ"
            )

    def check_source(self, fingerprint: str) -> None:
        """Raise unless the features come from the backbone checkpoint with ``fingerprint``."""
        if fingerprint != self.source_fingerprint:
            raise DataError(
                f"feature store {str(self.path)!r} was made with backbone "
                f"{self.meta['source'].get('checkpoint')!r} (fingerprint "
                f"{self.source_fingerprint}), not the checkpoint given "
                f"(fingerprint {fingerprint}); re-extract or use the matching one"
            )


class FeatureStoreWriter:
    """Write side: plan shards, write them atomically in any order, resume, then finalize.

    Opening a folder that holds an unfinished store with the same metadata resumes it; different
    metadata is an error unless ``overwrite``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        dataset: str,
        count: int,
        feature_dim: int,
        labels_fingerprint: str,
        source_checkpoint: str,
        source_fingerprint: str,
        views: int = 0,
        shard_size: int = 4096,
        overwrite: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if count < 1 or feature_dim < 1 or shard_size < 1 or views < 0:
            raise ConfigError(
                f"count, feature_dim, shard_size must be >= 1 and views >= 0, got "
                f"{count}, {feature_dim}, {shard_size}, {views}"
            )
        self.path = Path(path)
        self.meta = {
            "format": FORMAT,
            "dataset": dataset,
            "count": int(count),
            "feature_dim": int(feature_dim),
            "dtype": "float16",
            "views": int(views),
            "shard_size": int(shard_size),
            "labels_fingerprint": labels_fingerprint,
            "source": {"checkpoint": str(source_checkpoint), "fingerprint": source_fingerprint},
            "extra": extra or {},
            "shards": _plan(count, shard_size),
            "complete": False,
        }
        index = self.path / INDEX
        if index.is_file() and not overwrite:
            old = json.loads(index.read_text())
            keys = (
                "format",
                "dataset",
                "count",
                "feature_dim",
                "views",
                "shard_size",
                "labels_fingerprint",
                "source",
            )
            diff = [k for k in keys if old.get(k) != self.meta[k]]
            if diff:
                raise DataError(
                    f"{str(self.path)!r} already holds a feature store with different "
                    f"{diff}; choose another --out or pass --overwrite"
                )
            self.meta = old
            self.meta["complete"] = False
        elif overwrite and self.path.is_dir():
            for f in self.path.glob("shard_*"):
                f.unlink()
        write_json(index, self.meta)

    def pending(self) -> list[tuple[int, int, int]]:
        """``(shard id, start, stop)`` of every shard not yet on disk."""
        return [
            (i, s["start"], s["start"] + s["count"])
            for i, s in enumerate(self.meta["shards"])
            if not (self.path / s["file"]).is_file()
        ]

    def write_shard(self, i: int, features, view_labels: dict[str, np.ndarray] | None = None):
        """Write shard ``i``: features (n, feature_dim) or (n, 1 + views, feature_dim)."""
        s = self.meta["shards"][i]
        with np.errstate(over="ignore"):  # overflow is reported below as non-finite
            feats = np.asarray(features, dtype=np.float16)
        if feats.ndim == 2:
            feats = feats[:, None]
        want = (s["count"], 1 + self.meta["views"], self.meta["feature_dim"])
        if feats.shape != want:
            raise DataError(
                f"shard {i} must have shape {shape_str(want)}, got {shape_str(feats.shape)}"
            )
        if not np.isfinite(feats).all():
            raise DataError(f"shard {i} holds non-finite features (float16 overflow?)")
        if self.meta["views"]:
            if not view_labels:
                raise DataError(f"shard {i}: a store with views needs the views' labels")
            save_npz(self.path / s["file"].replace(".npy", ".views.npz"), **view_labels)
        with atomic_path(self.path / s["file"], suffix=".npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, feats)

    def finalize(self) -> FeatureStore:
        missing = self.pending()
        if missing:
            raise DataError(f"cannot finalize {str(self.path)!r}: {len(missing)} shard(s) missing")
        self.meta["complete"] = True
        write_json(self.path / INDEX, self.meta)
        return FeatureStore(self.path)


def write_feature_store(
    path: str | os.PathLike,
    features,
    *,
    dataset: str,
    labels_fingerprint: str,
    source_checkpoint: str,
    source_fingerprint: str,
    shard_size: int = 8192,
    overwrite: bool = True,
) -> FeatureStore:
    """Write an in-memory (N, D) feature array as a complete store (demo data, tests)."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise DataError(f"features must have shape (N, D), got {shape_str(features.shape)}")
    w = FeatureStoreWriter(
        path,
        dataset=dataset,
        count=len(features),
        feature_dim=features.shape[1],
        labels_fingerprint=labels_fingerprint,
        source_checkpoint=source_checkpoint,
        source_fingerprint=source_fingerprint,
        shard_size=shard_size,
        overwrite=overwrite,
    )
    for i, a, b in w.pending():
        w.write_shard(i, features[a:b])
    return w.finalize()
