"""The pose jobs behind ``ihmr split`` and ``ihmr eval``: load, check, run, write.

Kept apart from the metric code so that the CLI modules stay short shells over one call each.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DataError, check_at_least
from ..io import check_writable_dir, check_writable_file, open_npz
from ..models.hmr import HEAD_KIND, checkpoint_kind, load_head, read_checkpoint
from .evaluate import check_mpvpe_body, evaluate, predictions_from_file, predictions_from_head
from .extract import extract
from .features import FeatureStore, file_fingerprint
from .split import GenderedBodies, load_split, make_split, plot_split, save_split

PathLike = str | os.PathLike


def split_job(
    labels: PathLike,
    out: PathLike,
    metric: str = "vertex",
    n_regions: int = 100,
    train: Sequence[PathLike] = (),
    smpl_dir: PathLike | None = None,
    chunk: int = 1024,
    bodies: Any = None,
) -> dict[str, Path]:
    """Compute and save the balanced split of a test file (``split.npz`` + ``split.png``)."""
    from .spin_data import read_spin_npz  # looked up per call (tests)

    check_at_least(n_regions, 1, "--regions (the number of regions)")
    out = Path(out)
    npz = out if out.suffix == ".npz" else out / "split.npz"
    if out.suffix == ".npz":
        check_writable_file(npz, "split file")
    else:
        check_writable_dir(out)
    test = read_spin_npz(labels)
    require_smpl_ground_truth(test, labels)
    bodies = bodies or GenderedBodies.load(smpl_dir)
    train_labels = _concat([read_spin_npz(p) for p in train]) if train else None
    split = make_split(test, bodies, metric, n_regions, train_labels, chunk)
    return {"split": save_split(npz, split), "plot": plot_split(split, npz.with_suffix(".png"))}


def require_smpl_ground_truth(test: Any, path: PathLike) -> None:
    """Refuse test labels without SMPL ground truth for every sample (``pose`` and ``shape``,
    ``has_smpl`` = 1): absent keys read as zeros, and meshes of a zero pose would be scored."""
    with open_npz(path, "SPIN label file") as z:
        missing = [k for k in ("pose", "shape") if k not in z.files]
    rows = (~test.has_smpl.bool()).nonzero().flatten().tolist()
    if missing or rows:
        n = len(test) if missing else len(rows)
        why = (
            f"missing key(s) {missing}"
            if missing
            else f"has_smpl is 0 in rows {rows[:8]}{' ...' if len(rows) > 8 else ''}"
        )
        raise DataError(
            f"{str(path)!r} has no SMPL ground truth for {n} of {len(test)} samples "
            f"({why}); evaluation needs 'pose' (N, 72) and 'shape' (N, 10) with "
            "has_smpl = 1 for every sample (as in 3dpw_test.npz)"
        )


def _concat(sets: list) -> Any:
    """Several SpinLabels as one (for training-set counts)."""
    if len(sets) == 1:
        return sets[0]
    out = {}
    for f in dataclasses.fields(sets[0]):
        vals = [getattr(s, f.name) for s in sets]
        if isinstance(vals[0], np.ndarray):
            out[f.name] = np.concatenate(vals)
        elif torch.is_tensor(vals[0]):
            out[f.name] = torch.cat(vals)
        else:
            out[f.name] = "+".join(map(str, vals))
    return type(sets[0])(**out)


def eval_job(
    labels: PathLike,
    out: PathLike,
    *,
    predictions: PathLike | None = None,
    checkpoint: PathLike | None = None,
    features: PathLike | None = None,
    images: PathLike | None = None,
    split: PathLike | None = None,
    smpl_dir: PathLike | None = None,
    device: str | None = None,
    chunk: int = 1024,
    renders: int = 4,
    save_predictions: bool | None = None,
    progress: bool = False,
    bodies: Any = None,
    mpvpe_body: str = "gendered",
) -> tuple[dict, dict]:
    """Evaluate a predictions file, or a checkpoint (ours or SPIN's) on cached test features
    (or on the test images: features are then extracted to ``out/features`` first, resumably).

    Writes metrics.json, metrics.md, per_sample.npz, per_region.png, eval_info.json (and
    predictions.npz for checkpoints, renders when a GL backend exists) under ``out``; the split
    is computed and saved there when ``split`` is not given. ``mpvpe_body``: ``"gendered"`` (the
    IHMR release: predicted meshes through the ground-truth gender's body) or ``"neutral"``
    (SPIN); named in metrics.json.
    """
    from .spin_data import read_spin_npz  # looked up per call (tests)

    check_mpvpe_body(mpvpe_body)
    if (predictions is None) == (checkpoint is None):
        raise DataError(
            "give exactly one of --predictions (an .npz from any method) or "
            "--checkpoint (with --features)"
        )
    check_writable_dir(out)
    test = read_spin_npz(labels)
    require_smpl_ground_truth(test, labels)
    bodies = bodies or GenderedBodies.load(smpl_dir)
    info: dict[str, Any] = {"labels": str(labels)}
    s = None  # None: built from the ground-truth meshes during the evaluation pass
    if split is not None:
        s = load_split(split, n=len(test))
        info["split"] = str(split)
    if predictions is not None:
        source = predictions_from_file(predictions, len(test), bodies.neutral)
        info.update(predictions=str(predictions), title=Path(predictions).stem)
    else:
        if features is None and images is not None:
            features = Path(out) / "features"
            extract(
                labels, images, features, checkpoint=checkpoint, device=device, progress=progress
            )
        if features is None:
            raise DataError(
                "--checkpoint needs --features (a feature store of the test set, "
                "from `ihmr extract-features`) or --images (the test images)"
            )
        head, store = load_checked_head(checkpoint, features, test, bodies.neutral)
        source = predictions_from_head(head, store.tensor(device=device), bodies.neutral, device)
        info.update(checkpoint=str(checkpoint), features=str(features), title=Path(checkpoint).stem)
        save_predictions = True if save_predictions is None else save_predictions
    return evaluate(
        source,
        test,
        s,
        bodies,
        out,
        info,
        chunk,
        bool(save_predictions),
        renders,
        progress,
        device,
        mpvpe_body,
    )


def load_checked_head(checkpoint: PathLike, features: PathLike, test: Any, body: Any):
    """Head from a checkpoint plus the test feature store, with every consistency check."""
    store = FeatureStore(features)
    store.check_labels(test)
    ckpt = read_checkpoint(checkpoint)
    if checkpoint_kind(ckpt) == HEAD_KIND:
        fp = ckpt.get("features_fingerprint")
        if fp:
            store.check_source(fp)
    else:  # SPIN: the head belongs to the backbone the features came from
        store.check_source(file_fingerprint(checkpoint))
    head = load_head(checkpoint, getattr(body, "mean_params", None))
    if head.feature_dim != store.feature_dim:
        raise DataError(
            f"the head takes {head.feature_dim}-d features but the store holds "
            f"{store.feature_dim}-d ones"
        )
    return head, store
