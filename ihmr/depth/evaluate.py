"""Test-set evaluation of a depth checkpoint: metrics.json, a Table-2 style table, plots.

Predictions (half resolution) are upsampled bilinearly to the 304 x 228 test crop and evaluated
on the balanced mask's pixels (:mod:`ihmr.depth.metrics`). Outputs in ``out``:

- ``metrics.json``: overall / many / medium / few metrics, their balanced variants, pixel counts,
  the per-bin RMSE, and where the checkpoint came from;
- ``table.md``: RMSE and delta1, All / Many / Med. / Few, as in the paper's Table 2;
- ``error_per_bin.png``: RMSE per 0.1 m depth bin with the training pixel histogram behind it;
- ``examples.png``: a few test images beside their ground truth and predicted depth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..config import from_dict
from ..errors import DataError
from ..io import atomic_path, check_writable_dir, write_json, write_text
from ..runs import read_checkpoint, resolve_device
from . import data as D
from .data import BIN_WIDTH, N_BINS
from .metrics import DepthMetrics, table2_markdown
from .model import upsample_to
from .train import DepthTrainConfig, build_model


def load_depth_model(checkpoint: str | Path, device: str = "cpu"):
    """(model in eval mode, config dict) from a ``best.pt`` / ``last.pt`` of :func:`train_depth`."""
    ck = read_checkpoint(checkpoint, map_location=device)
    state, cfg_dict = ck["state"].get("model"), ck.get("extra", {}).get("config")
    if state is None or cfg_dict is None:
        raise DataError(f"{checkpoint} is not a depth checkpoint (no model weights and config)")
    cfg = from_dict(DepthTrainConfig, _current_words(cfg_dict))
    model = build_model(cfg.model)
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


def _current_words(cfg: dict) -> dict:
    """A checkpoint's config in today's words: checkpoints saved before the shared vocabulary
    (``loss.sigma``, ``loss.learn_sigma``, ``loss.sigma_lr``, ``kind: reweight`` with
    ``loss.reweight``, ``resume``) still load."""
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items() if k != "resume"}
    loss, optim = cfg.get("loss", {}), cfg.get("optim", {})
    for old, new in (("sigma", "init_noise_sigma"), ("learn_sigma", "learn_noise")):
        if old in loss:
            loss[new] = loss.pop(old)
    if "sigma_lr" in loss:
        optim["sigma_lr"] = loss.pop("sigma_lr")
    mode = loss.pop("reweight", "inverse")
    if loss.get("kind") == "reweight":
        loss["kind"] = mode
    return cfg


def evaluate_depth_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    data_root: Optional[str] = None,
    batch_size: int = 8,
    n_examples: int = 4,
    device: str = "auto",
    name: str = "model",
) -> dict:
    """Evaluate ``checkpoint`` on the test split; write the files listed above; return metrics.

    ``data_root`` overrides the dataset root recorded in the checkpoint's config.
    """
    device = resolve_device(device)
    out = check_writable_dir(out)
    model, cfg = load_depth_model(checkpoint, device)
    layout = D.Layout(data_root or cfg.data.root)
    ds = D.NYUD2DIR(layout, "test", augment=False, input_wh=cfg.data.input_wh)
    shots = D.load_shots(layout.path(layout.shots))
    loader = torch.utils.data.DataLoader(ds, batch_size, num_workers=cfg.data.workers)
    acc = DepthMetrics(shots)
    examples = []
    with torch.no_grad():
        for batch in loader:
            pred = upsample_to(model(batch["image"].to(device)), batch["depth"].shape[-2:])[:, 0]
            acc.update(pred.cpu(), batch["depth"][:, 0], batch["mask"])
            for j in range(len(pred)):
                if len(examples) < n_examples:
                    examples.append((int(batch["index"][j]), pred[j].cpu().numpy()))
    res = acc.compute()
    pb = acc.per_bin()
    res["per_bin_rmse"] = [None if not np.isfinite(v) else float(v) for v in pb["rmse"]]
    res["checkpoint"] = str(checkpoint)
    res["loss"] = cfg.loss.kind
    write_json(out / "metrics.json", res)
    write_text(out / "table.md", table2_markdown({name: res}))
    prior = Path(checkpoint).parent / "prior_bins.npz"
    train_counts = np.load(prior)["counts"] if prior.is_file() else None
    plot_error_per_bin({name: pb["rmse"]}, out / "error_per_bin.png", train_counts, shots)
    plot_examples(ds, examples, out / "examples.png")
    return res


def plot_error_per_bin(rmse_by_name: dict, path: Path, train_counts=None, shots=None) -> Path:
    """Line plot of RMSE per depth bin for one or more models, training histogram shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = (np.arange(N_BINS) + 0.5) * BIN_WIDTH
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=90)
    if train_counts is not None:
        ax2 = ax.twinx()
        ax2.bar(
            x,
            np.asarray(train_counts) / max(np.sum(train_counts), 1),
            width=BIN_WIDTH,
            color="0.85",
            zorder=0,
        )
        ax2.set_ylabel("training pixel share")
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
    for name, r in rmse_by_name.items():
        ax.plot(x, r, label=name, lw=1.4)
    if shots and shots.get("many"):
        lo, hi = min(shots["many"]) * BIN_WIDTH, (max(shots["many"]) + 1) * BIN_WIDTH
        ax.axvspan(lo, hi, color="tab:green", alpha=0.08, label="many-shot range")
    ax.set_xlabel("ground-truth depth (m)")
    ax.set_ylabel("RMSE (m)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot_examples(ds, examples, path: Path) -> Path:
    """Rows of (image, ground truth, prediction) for ``examples`` = [(file index, pred (H, W))]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(examples))
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 1.9 * n), dpi=80, squeeze=False)
    for row, (j, pred) in zip(axes, examples, strict=False):
        rgb, depth = ds.load(ds.index.index(j))
        vmax = float(max(depth.max(), 1.0))
        row[0].imshow(rgb)
        row[1].imshow(depth, vmin=0, vmax=vmax, cmap="viridis")
        row[2].imshow(np.clip(pred, 0, None), vmin=0, vmax=vmax, cmap="viridis")
    for ax, title in zip(axes[0], ("image", "ground truth", "prediction"), strict=True):
        ax.set_title(title, fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def compare_runs(metrics_files: dict, out: Path) -> str:
    """Table 2 for several evaluated runs: {name: metrics.json path} -> Markdown (also written)."""
    results = {k: json.loads(Path(v).read_text()) for k, v in metrics_files.items()}
    text = table2_markdown(results)
    write_text(out, text)
    return text
