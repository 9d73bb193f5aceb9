"""Figures of the synthetic benchmark (paper Figs. 2, 3, 4 and 7), drawn with matplotlib Agg.

Each function returns the file name it saved under ``folder``; figures show the first seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import spec as S
from .models import predict

COLORS = {
    "oracle": "#1f4e9c",
    "vanilla": "#e6a800",
    "reweight": "#2a9d3c",
    "gai_true": "#d62728",
    "bmc_true": "#9b2d8e",
    "gai": "#ff7f50",
    "bmc": "#8c564b",
    "train": "#6b8fd6",
    "test": "#333333",
}
SHOWN = ("vanilla", "reweight", "gai_true", "bmc_true")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _predict(run, g: int, r: int, x: np.ndarray) -> np.ndarray:
    theta = torch.as_tensor(run.result.params[g : g + 1, r : r + 1])
    return predict(run.spec, theta, torch.as_tensor(x[None], dtype=torch.float64))[0, 0].numpy()


def _find(run, **want) -> int | None:
    for g, (dist, skew, fn, seed) in enumerate(run.groups):
        got = {"distribution": dist, "skew": skew, "function": fn, "seed": seed}
        if all(got[k] == v for k, v in want.items()):
            return g
    return None


def fig2(run, folder: Path) -> str | None:
    """Fig. 2: regression lines (left) and predicted-label distributions on the uniform test
    set (right) for Normal and Exponential labels, one row per skew."""
    plt = _plt()
    dists = [d for d in ("normal", "exponential") if _find(run, distribution=d) is not None]
    skews = [s for s in S.SKEWS if _find(run, skew=s) is not None]
    methods = [m for m in SHOWN if m in run.result.methods]
    fig, axes = plt.subplots(
        len(skews),
        2 * len(dists),
        figsize=(4.2 * len(dists) * 2 / 1.6, 2.6 * len(skews)),
        squeeze=False,
    )
    xs = np.linspace(-3, 13, 200)[:, None]
    bins = np.linspace(0, 10, 21)
    for i, skew in enumerate(skews):
        for j, dist in enumerate(dists):
            g = _find(run, distribution=dist, skew=skew, seed=0)
            if g is None:
                continue
            data = run.datasets[g]
            ax, axh = axes[i, 2 * j], axes[i, 2 * j + 1]
            ax.scatter(
                data.x_train[:, 0],
                data.y_train[:, 0],
                s=4,
                alpha=0.15,
                color=COLORS["train"],
                linewidths=0,
            )
            ax.plot(xs[:, 0], data.oracle(xs)[:, 0], color=COLORS["oracle"], lw=2, label="oracle")
            axh.hist(
                data.y_train[:, 0],
                bins=bins,
                density=True,
                orientation="horizontal",
                color=COLORS["train"],
                alpha=0.35,
                label="train labels",
            )
            axh.hist(
                data.y_test[:, 0],
                bins=bins,
                density=True,
                orientation="horizontal",
                histtype="step",
                color=COLORS["test"],
                lw=1.5,
                label="test labels",
            )
            for m in methods:
                r = run.result.methods.index(m)
                ax.plot(
                    xs[:, 0],
                    _predict(run, g, r, xs)[:, 0],
                    color=COLORS[m],
                    lw=1.3,
                    label=S.METHOD_LABELS[m],
                )
                pred = _predict(run, g, r, data.x_test)[:, 0]
                pred = pred[(pred >= 0) & (pred <= 10)]  # the histogram covers the range only
                if len(pred):
                    axh.hist(
                        pred,
                        bins=bins,
                        density=True,
                        orientation="horizontal",
                        histtype="step",
                        color=COLORS[m],
                        lw=1.2,
                    )
            ax.set_xlim(0, 10), ax.set_ylim(0, 10), axh.set_ylim(0, 10)
            ax.set_title(f"{dist} / {skew}", fontsize=9)
            axh.set_title("p(y) on test", fontsize=9)
            ax.tick_params(labelsize=7), axh.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper left")
    axes[0, 1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    name = "fig2_linear_1d.png"
    fig.savefig(folder / name, dpi=80)
    plt.close(fig)
    return name


def fig3(run, folder: Path) -> str | None:
    """Fig. 3: 2-D histograms of the training labels, the test labels and each method's
    predicted labels on the test set (MVN), one row per skew."""
    plt = _plt()
    skews = [s for s in S.SKEWS if _find(run, skew=s, seed=0) is not None]
    methods = [m for m in SHOWN if m in run.result.methods]
    cols = 2 + len(methods)
    fig, axes = plt.subplots(
        len(skews), cols, figsize=(1.9 * cols, 2.0 * len(skews)), squeeze=False
    )
    edges = np.linspace(-5, 5, 26)
    for i, skew in enumerate(skews):
        g = _find(run, skew=skew, seed=0)
        data = run.datasets[g]
        panels = [("train", data.y_train), ("test", data.y_test)] + [
            (S.METHOD_LABELS[m], _predict(run, g, run.result.methods.index(m), data.x_test))
            for m in methods
        ]
        for j, (title, y) in enumerate(panels):
            ax = axes[i, j]
            ax.hist2d(y[:, 0], y[:, 1], bins=[edges, edges], cmap="viridis")
            ax.set_title(f"{title}" + (f" ({skew})" if j == 0 else ""), fontsize=7)
            ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    name = "fig3_mvn_marginals.png"
    fig.savefig(folder / name, dpi=80)
    plt.close(fig)
    return name


def fig4(run, folder: Path) -> str | None:
    """Fig. 4: nonlinear regressions, oracle and each method's fit, one panel per oracle."""
    plt = _plt()
    methods = [m for m in SHOWN if m in run.result.methods]
    fig, axes = plt.subplots(
        1, len(run.groups), figsize=(3.0 * len(run.groups), 2.8), squeeze=False
    )
    for g, (_, _, fn, _) in enumerate(run.groups):
        data = run.datasets[g]
        ax = axes[0, g]
        xs = np.linspace(data.x_test.min(), data.x_test.max(), 300)[:, None]
        ax.scatter(
            data.x_train[:, 0],
            data.y_train[:, 0],
            s=4,
            alpha=0.15,
            color=COLORS["train"],
            linewidths=0,
        )
        ax.plot(xs[:, 0], data.oracle(xs)[:, 0], color=COLORS["oracle"], lw=2, label="oracle")
        for m in methods:
            ax.plot(
                xs[:, 0],
                _predict(run, g, run.result.methods.index(m), xs)[:, 0],
                color=COLORS[m],
                lw=1.2,
                label=S.METHOD_LABELS[m],
            )
        ax.set_ylim(-1, 11), ax.set_title(fn, fontsize=9), ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    name = "fig4_nonlinear.png"
    fig.savefig(folder / name, dpi=80)
    plt.close(fig)
    return name


def fig7(records, methods, folder: Path) -> str | None:
    """Fig. 7: spread of the test MSE over seeds, per setting and method (log scale)."""
    plt = _plt()
    settings = [
        (d, s)
        for d in S.DISTRIBUTIONS
        for s in S.SKEWS
        if any(r["distribution"] == d and r["skew"] == s for r in records)
    ]
    if not settings:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(settings)), 3.2))
    width = 0.8 / len(methods)
    for k, m in enumerate(methods):
        for i, (d, s) in enumerate(settings):
            vals = [
                r["test_mse"]
                for r in records
                if r["distribution"] == d and r["skew"] == s and r["method"] == m
            ]
            xpos = np.full(len(vals), i + (k - (len(methods) - 1) / 2) * width)
            ax.scatter(
                xpos,
                np.maximum(vals, 1e-5),
                s=10,
                color=COLORS[m],
                label=S.METHOD_LABELS[m] if i == 0 else None,
            )
    ax.set_yscale("log")
    ax.set_xticks(range(len(settings)), [f"{d[:3]}/{s[:3]}" for d, s in settings], fontsize=7)
    ax.set_ylabel("test MSE (per seed)", fontsize=8)
    ax.legend(fontsize=6, ncol=3)
    fig.tight_layout()
    name = "fig7_seeds.png"
    fig.savefig(folder / name, dpi=80)
    plt.close(fig)
    return name


def save_figures(result, folder) -> list[str]:
    """Draw every figure the result has data for into ``folder``; return the file names."""
    folder = Path(folder)
    names = []
    fam = result.families
    if "1-D linear" in fam:
        names.append(fig2(fam["1-D linear"], folder))
    if "2-D linear" in fam:
        names.append(fig3(fam["2-D linear"], folder))
    if "nonlinear" in fam:
        names.append(fig4(fam["nonlinear"], folder))
    names.append(fig7(result.records, result.config.methods, folder))
    return [n for n in names if n]
