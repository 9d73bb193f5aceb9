"""``ihmr split``: the 100-region balanced split of a test set (saved as .npz + plot)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ihmr.errors import check_choice


def split(
    labels: Path = typer.Argument(..., help="Test labels (SPIN .npz, e.g. 3dpw_test.npz)."),
    out: Path = typer.Option(
        Path("runs/split/split.npz"), "--out", "-o", help="Split file (.npz) or folder."
    ),
    metric: str = typer.Option(
        "vertex", help="vertex (paper text, release) or geodesic (Fig. 9 caption)."
    ),
    regions: int = typer.Option(100, help="Number of equal-width regions."),
    train: Optional[List[Path]] = typer.Option(
        None, help="Training label files, counted on the same regions (repeatable)."
    ),
    smpl_dir: Optional[Path] = typer.Option(
        None, help="SMPL files folder (default: $IHMR_SMPL_DIR, else the open body)."
    ),
) -> None:
    """Distance of every test sample to the mean mesh, 100 regions exactly as released."""
    from ihmr.pose.jobs import split_job

    check_choice(metric, ["vertex", "geodesic"], "--metric")
    paths = split_job(labels, out, metric, regions, train or (), smpl_dir)
    typer.echo(f"wrote {paths['split']} and {paths['plot']}")
