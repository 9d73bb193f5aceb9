"""``ihmr extract-features``: images -> SPIN crops -> ResNet-50 features, in a feature store.

Batched, with a progress bar, resumable (shards are written atomically; a rerun of the same
command writes only the missing shards), on a CPU or a GPU, and split across GPUs with
``torchrun`` (rank r takes shards r, r + W, ...; whoever finds the store complete finalises it).
``views = K`` also stores K augmented views per image (SPIN's flip, rotation, scale, colour
noise; :mod:`ihmr.pose.crop`) with their transformed labels; every view's augmentation is drawn
from a generator seeded by (seed, sample index, view), so a resumed run draws the same views.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DataError
from ..io import read_image
from ..models.hmr import load_spin_model
from ..spin import IMG_RES
from ..training import Progress
from .crop import (
    Augment,
    crop_image,
    normalise,
    transform_keypoints2d,
    transform_keypoints3d,
    transform_pose,
)
from .features import FeatureStore, FeatureStoreWriter, file_fingerprint
from .spin_data import read_spin_npz


def view_augments(seed: int, index: int, views: int) -> list[Augment]:
    """The K augmentations of sample ``index`` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    return [Augment.sample(rng) for _ in range(views)]


def _sample_inputs(labels, root: Path, i: int, res: int, views: int, seed: int):
    img = read_image(
        root / str(labels.imgname[i]),
        hint="check --images (the dataset root the label file's imgname is relative to)",
    )
    center, scale = labels.center[i].numpy(), float(labels.scale[i])
    augs = [Augment()] + view_augments(seed, i, views)
    crops = np.stack([normalise(crop_image(img, center, scale, res, a)) for a in augs])
    vl = None
    if views:
        pose, part = labels.pose[i].numpy(), labels.keypoints2d[i].numpy()
        S, op = labels.keypoints3d[i].numpy(), labels.openpose[i].numpy()
        a = augs[1:]
        vl = {
            "pose": np.stack([transform_pose(pose, x) for x in a]),
            "part": np.stack([transform_keypoints2d(part, center, scale, res, x) for x in a]),
            "openpose": np.stack([transform_keypoints2d(op, center, scale, res, x) for x in a]),
            "S": np.stack([transform_keypoints3d(S, x) for x in a]),
            "flip": np.array([x.flip for x in a]),
            "rot": np.array([x.rot for x in a]),
            "scale": np.array([x.scale for x in a]),
            "pn": np.array([x.pn for x in a]),
        }
    return crops, vl


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (single process: 0, 1, 0)."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def extract(
    labels_path: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    backbone: Any = None,
    fingerprint: str | None = None,
    batch_size: int = 64,
    device: str | None = None,
    views: int = 0,
    shard_size: int = 2048,
    res: int = IMG_RES,
    seed: int = 0,
    workers: int = 4,
    overwrite: bool = False,
    progress: bool = False,
    on_shard: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Extract the features of every sample of a SPIN label file into a feature store.

    Give ``checkpoint`` (a SPIN ``model_checkpoint.pt``: its backbone is used, its file hash is the
    store's source fingerprint) or ``backbone`` (a module with ``.features``) plus ``fingerprint``.
    Returns a summary (shards written, seconds, store path).
    """
    labels = read_spin_npz(labels_path)
    rank, world, local = dist_info()
    if overwrite and world > 1:  # no barrier between ranks: one could delete another's shards
        raise DataError(
            "--overwrite is not supported under torchrun; delete the output folder "
            "first, then start all ranks"
        )
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    if backbone is None:
        if checkpoint is None:
            raise DataError("give --checkpoint (SPIN's model_checkpoint.pt) for the backbone")

        backbone, fingerprint = load_spin_model(checkpoint).backbone, file_fingerprint(checkpoint)
    if fingerprint is None:
        raise DataError("a backbone given directly needs a fingerprint naming its weights")
    backbone = backbone.eval().to(device)
    writer = FeatureStoreWriter(
        out,
        dataset=labels.dataset,
        count=len(labels),
        feature_dim=int(getattr(backbone, "feature_dim", 2048)),
        labels_fingerprint=labels.fingerprint(),
        source_checkpoint=str(checkpoint or "module"),
        source_fingerprint=fingerprint,
        views=views,
        shard_size=shard_size,
        overwrite=overwrite,
        extra={"res": res, "seed": seed},
    )
    todo = [p for p in writer.pending() if p[0] % world == rank]
    root, t0, done = Path(images), time.perf_counter(), 0
    total = sum(b - a for _, a, b in todo)
    with (
        Progress(total, "extracting features", enabled=progress) as bar,
        ThreadPoolExecutor(max(1, workers)) as pool,
        torch.no_grad(),
    ):
        for shard, a, b in todo:
            feats, vls = [], []
            for s in range(a, b, batch_size):
                idx = range(s, min(s + batch_size, b))
                items = list(
                    pool.map(lambda i: _sample_inputs(labels, root, i, res, views, seed), idx)
                )
                x = torch.from_numpy(np.concatenate([c for c, _ in items])).to(device)
                f = backbone.features(x).float().cpu().numpy()
                feats.append(f.reshape(len(idx), 1 + views, -1))
                vls += [v for _, v in items]
                bar.advance(len(idx))
            vl = {k: np.stack([v[k] for v in vls]) for k in vls[0]} if views else None
            writer.write_shard(shard, np.concatenate(feats), vl)
            done += 1
            if on_shard:
                on_shard(shard)
    complete = not writer.pending()
    if complete:
        writer.finalize()
        FeatureStore(out).check_labels(labels)
    return {
        "store": str(out),
        "shards_written": done,
        "complete": complete,
        "seconds": round(time.perf_counter() - t0, 2),
        "device": str(device),
    }
