"""Outputs of a sigma search: table (CSV, Markdown), curve plot, search.json, chosen config."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import save_config
from ..io import atomic_path, write_json, write_text
from .search import SigmaSearch


def markdown(
    search: SigmaSearch, metric: str, learned: dict | None = None, mse: float | None = None
) -> str:
    """Markdown table of every candidate (chosen one in bold), the learned-sigma run and the
    shared MSE start when there are."""
    lines = [f"| sigma | validation {metric} | seconds | stage |", "|---:|---:|---:|---|"]
    for c in sorted(search.candidates, key=lambda c: c.sigma):
        s = f"{c.sigma:.4g}"
        v = "diverged" if math.isinf(c.score) else f"{c.score:.4f}"
        if c.sigma == search.sigma:
            s, v = f"**{s}**", f"**{v}**"
        lines.append(f"| {s} | {v} | {c.seconds:.1f} | {c.stage} |")
    if learned is not None:
        lines.append(
            f"| learned ({learned['sigma']:.4g}) | {learned['score']:.4f} | "
            f"{learned['seconds']:.1f} | learned |"
        )
    if mse is not None:
        lines.append(
            f"| MSE start (no sigma) | {mse:.4f} | {search.warm_start_seconds:.1f} | shared start |"
        )
    lines += [
        "",
        f"chosen sigma: {search.sigma:.4g} (validation {metric} {search.score:.4f}); "
        + (
            f"candidates fine-tuned from one shared MSE start ({search.warm_start_seconds:.1f} s)"
            if search.reused_model
            else "every candidate trained from scratch"
        ),
    ]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, search: SigmaSearch, learned: dict | None) -> Path:
    rows = ["sigma,score,seconds,stage,chosen"]
    for r in search.table():
        rows.append(f"{r['sigma']!r},{r['score']!r},{r['seconds']},{r['stage']},{int(r['chosen'])}")
    if learned is not None:
        rows.append(f"{learned['sigma']!r},{learned['score']!r},{learned['seconds']},learned,0")
    return write_text(path, "\n".join(rows) + "\n")


def plot_curve(
    path: str | os.PathLike,
    search: SigmaSearch,
    metric: str,
    title: str = "",
    learned: dict | None = None,
    mse: float | None = None,
) -> Path:
    """Validation metric against sigma (log axis); chosen sigma ringed, learned sigma starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    curve = search.curve
    fin = np.isfinite(curve[:, 1])
    fig, ax = plt.subplots(figsize=(5.6, 3.4), dpi=100)
    ax.plot(curve[fin, 0], curve[fin, 1], "o-", ms=4, label="fixed sigma")
    if (~fin).any():
        top = curve[fin, 1].max() if fin.any() else 1.0
        ax.plot(curve[~fin, 0], np.full((~fin).sum(), top), "x", color="C3", label="diverged")
    ax.plot(
        [search.sigma],
        [search.score],
        "o",
        ms=11,
        mfc="none",
        mec="C2",
        mew=2,
        label=f"chosen {search.sigma:.3g}",
    )
    if learned is not None:
        ax.plot(
            [learned["sigma"]],
            [learned["score"]],
            "*",
            ms=13,
            color="C1",
            label=f"learned sigma ({learned['sigma']:.3g})",
        )
    if mse is not None:
        ax.axhline(mse, ls="--", color="0.5", lw=1, label="MSE start")
    ax.set_xscale("log")
    ax.set_xticks(curve[:, 0], [f"{v:.3g}" for v in curve[:, 0]])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("sigma")
    ax.set_ylabel(f"validation {metric}")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def write_outputs(
    out: Path,
    search: SigmaSearch,
    metric: str,
    chosen_cfg: Any,
    title: str,
    learned: dict | None,
    info: dict[str, Any],
    mse: float | None = None,
) -> dict[str, Path]:
    """Write table.md, table.csv, curve.png, chosen.yaml and search.json (last) into ``out``."""
    table = markdown(search, metric, learned, mse)
    files = {
        "table": write_text(out / "table.md", f"### {title}\n\n" + table),
        "csv": write_csv(out / "table.csv", search, learned),
        "plot": plot_curve(out / "curve.png", search, metric, title, learned, mse),
        "config": save_config(chosen_cfg, out / "chosen.yaml"),
    }
    payload = {
        "sigma": search.sigma,
        "score": search.score,
        "metric": metric,
        "reused_model": search.reused_model,
        "seconds": round(search.seconds, 3),
        "warm_start_seconds": round(search.warm_start_seconds, 3),
        "candidates": search.table(),
        "learned": learned,
        "mse_start_score": mse,
        **info,
    }
    files["json"] = write_json(out / "search.json", payload)  # last: marks a finished search
    return files
