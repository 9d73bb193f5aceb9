"""``ihmr demo``: demo data -> prior -> train MSE, GAI, BMC -> eval -> table and renders."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def demo(
    data: Path = typer.Option(
        Path("data/demo"), "--data", help="Demo data folder (generated if absent)."
    ),
    runs: Path = typer.Option(
        Path("runs/demo"), "--runs", help="Folder of the runs (one sub-folder per run)."
    ),
    kinds: str = typer.Option(
        "mse,gai,bmc,gai_kp,bmc_kp",
        "--losses",
        help="Runs to train, comma-separated: mse, gai, bmc (Balanced MSE on the pose, keypoints "
        "MSE: the released composition), gai_kp, bmc_kp (keypoint losses balanced too).",
    ),
    sets: Optional[List[str]] = typer.Option(
        [], "--set", help="Override every run's config, e.g. --set optim.epochs=1."
    ),
    render: bool = typer.Option(True, "--render/--no-render", help="Render the rarest test poses."),
) -> None:
    """The end-to-end IHMR demo: MSE against Balanced MSE (GAI, BMC), balanced metrics.

    Balanced MSE on the pose only (keypoints MSE) and on pose and keypoints, side by side."""
    from ihmr.pose.demo import run_demo

    res = run_demo(
        data,
        runs,
        [k.strip() for k in kinds.split(",") if k.strip()],
        sets or [],
        echo=typer.echo,
        render=render,
    )
    typer.echo("\nbalanced metrics on the demo test set (mm, lower is better):\n")
    typer.echo(res["table"])
    typer.echo(res["verdict"])
    typer.echo(res["renders"])
    typer.echo(f"runs: {runs} (demo_metrics.md, demo_metrics.json); total {res['seconds']:.0f} s")
