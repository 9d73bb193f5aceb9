"""Evaluate age checkpoints: ``metrics.json``, a Table 1 style Markdown table, per-sample errors and
a Fig. 5 style plot (per-age MAE gain of a balanced model over the vanilla one, drawn over the
training label histogram).

Shots come from the training counts stored in the checkpoint (``train_counts``), so evaluation
needs neither the training images nor their features.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import DataError
from ..io import atomic_path, check_writable_dir, write_json, write_text
from ..runs import resolve_device
from .data import dataset_paths, make_dataset, read_age_csv
from .features import load_features, weights_fingerprint
from .metrics import AgeMetrics, table1_markdown
from .train import load_age_checkpoint, predict_head, predict_images


def predict_split(
    checkpoint: str | os.PathLike,
    split: str = "test",
    *,
    features: str | None = None,
    csv_path: str | None = None,
    root: str | None = None,
    device: str = "auto",
    batch_size: int = 256,
    workers: int = 0,
) -> dict[str, Any]:
    """Predictions of a ``best.pt`` on one split, from cached features (fast) or from the images
    (``csv_path`` / ``root`` replace the checkpoint config's ``data.csv`` / ``data.root``, read
    by the same rule: :func:`ihmr.age.data.dataset_paths`).

    Returns ``{"pred": (N,), "age": (N,), "paths": (N,), "payload": checkpoint dict}``.
    """
    device = resolve_device(device)
    model, payload = load_age_checkpoint(checkpoint, device)
    if features:
        f = load_features(features, {"backbone": weights_fingerprint(payload["model"])}, (split,))[
            split
        ]
        pred, ages, paths = predict_head(model.linear, f["x"], device), f["y"].numpy(), f["paths"]
    else:
        data = payload["config"]["data"]
        csv_path, root = dataset_paths(csv_path or data["csv"], root or data.get("root"))
        table = read_age_csv(csv_path, tuple(data["label_range"])).subset(split)
        ds = make_dataset(table, root, data["img_size"], train=False)
        pred, ages = predict_images(model, ds, device, batch_size, workers)
        paths = table.paths
    return {
        "pred": pred.astype(np.float64),
        "age": ages.astype(np.float64),
        "paths": np.asarray(paths),
        "payload": payload,
    }


def metrics_of(pred: np.ndarray, ages: np.ndarray, payload: Mapping[str, Any]) -> AgeMetrics:
    cfg = payload["config"]
    counts = np.asarray(payload["train_counts"])
    train_ages = np.repeat(np.arange(len(counts)), counts)  # integer ages reproduce the counts
    m = AgeMetrics(train_ages, len(counts), cfg.get("many", 100), cfg.get("few", 20))
    m.update(pred, ages)
    return m


def write_per_sample(path: Path, paths: np.ndarray, ages: np.ndarray, pred: np.ndarray) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "age", "pred", "abs_err"])
    for p, a, q in zip(paths, ages, pred, strict=True):
        w.writerow([p, f"{a:g}", f"{q:.4f}", f"{abs(q - a):.4f}"])
    return write_text(path, buf.getvalue())


def plot_gain(
    path: Path, balanced: AgeMetrics, vanilla: AgeMetrics, name: str = "Balanced MSE"
) -> Path:
    """Fig. 5 style: bars = per-age MAE(vanilla) - MAE(balanced) (positive: balanced is better),
    light-blue background = training images per age."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b, v = balanced.per_age(), vanilla.per_age()
    ok = (b["count"] > 0) & (v["count"] > 0)
    last = int(np.flatnonzero((b["train_count"] > 0) | ok).max()) + 1
    fig, ax = plt.subplots(figsize=(6.4, 3.0), dpi=100)
    hist = ax.twinx()
    hist.fill_between(
        np.arange(last), b["train_count"][:last], step="mid", color="#cfe6f7", zorder=0
    )
    hist.set_ylabel("training images")
    ax.set_zorder(hist.get_zorder() + 1)
    ax.patch.set_visible(False)
    gain = np.where(ok, v["mae"] - b["mae"], 0.0)[:last]
    ax.bar(np.arange(last), gain, color=np.where(gain >= 0, "#2a7fbf", "#d9534f"), width=0.8)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("age")
    ax.set_ylabel("MAE gain (years)")
    ax.set_title(f"{name}: per-age MAE gain over vanilla")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def evaluate_age_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split: str = "test",
    features: str | None = None,
    vanilla: str | os.PathLike | None = None,
    name: str | None = None,
    csv_path: str | None = None,
    root: str | None = None,
    device: str = "auto",
    batch_size: int = 256,
    workers: int = 0,
) -> dict[str, Any]:
    """Evaluate one age checkpoint on ``split`` and write its report to ``out_dir``.

    Writes ``metrics.json`` (all DIR and balanced metrics, overall and per shot; empty shots are
    ``null``), ``table.md`` (Table 1 layout; with ``vanilla`` also the vanilla row),
    ``per_sample.csv`` (path, age, prediction, absolute error) and, with ``vanilla`` (the stage-1
    checkpoint), ``gain.png`` (Fig. 5 style). Returns ``{"metrics": ..., "files": [...]}``.
    """
    if split not in ("val", "test"):
        raise DataError(f"split must be 'val' or 'test', got {split!r}")
    out = check_writable_dir(out_dir)
    kw = dict(
        features=features,
        csv_path=csv_path,
        root=root,
        device=device,
        batch_size=batch_size,
        workers=workers,
    )
    p = predict_split(checkpoint, split, **kw)
    name = name or _method_name(p["payload"])
    m = metrics_of(p["pred"], p["age"], p["payload"])
    rows = {name: m.compute()}
    files = [write_per_sample(out / "per_sample.csv", p["paths"], p["age"], p["pred"])]
    if vanilla is not None:
        q = predict_split(vanilla, split, **kw)
        if not np.array_equal(q["age"], p["age"]):
            raise DataError("the vanilla and the evaluated checkpoint see different test sets")
        mv = metrics_of(q["pred"], q["age"], q["payload"])
        rows = {"Vanilla": mv.compute(), **rows}
        files.append(plot_gain(out / "gain.png", m, mv, name))
    files.append(
        write_json(
            out / "metrics.json",
            {"checkpoint": str(checkpoint), "split": split, "method": name, "metrics": rows},
        )
    )
    files.append(write_text(out / "table.md", table1_markdown(rows)))
    return {"metrics": rows[name], "rows": rows, "files": [str(f) for f in files]}


def _method_name(payload: Mapping[str, Any]) -> str:
    if payload.get("stage") == "vanilla":
        return "Vanilla"
    c = payload["config"]
    # checkpoints written before the loss section (rrt.loss, rrt.lds) are still read
    lc = c["loss"] if "loss" in c else {"kind": c["rrt"]["loss"], "lds": c["rrt"].get("lds")}
    kind, lds = lc["kind"], lc["lds"]
    names = {
        "bmc": "BMC",
        "gai": "GAI",
        "bni": "BNI",
        "inverse": "RRT (inv)",
        "sqrt_inv": "RRT (sqrt-inv)",
        "mse": "RRT (MSE)",
        "l1": "RRT (L1)",
    }
    return names[kind] + (" + LDS" if lds and kind in ("bni", "inverse", "sqrt_inv") else "")
