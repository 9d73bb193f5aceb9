"""``ihmr render``: body parameters (predictions, ground truth) to PNGs, optionally over images."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def render(
    predictions: List[Path] = typer.Argument(
        ..., help="Predictions .npz file(s): pose, betas, optional cam, imgname, center, scale."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the PNGs."),
    images: Optional[Path] = typer.Option(
        None, help="Image folder (paths from the files' imgname)."
    ),
    gt: Optional[Path] = typer.Option(
        None, help="Ground-truth .npz (pose, betas, optional gender) for a comparison strip."
    ),
    label: List[str] = typer.Option(
        [], help="Label of each predictions file (repeat; default: file names)."
    ),
    side: bool = typer.Option(False, "--side/--no-side", help="Add side views."),
    size: int = typer.Option(
        512, help="Panel size in pixels when rendering on a crop or on white."
    ),
    first: int = typer.Option(0, help="First sample to render."),
    count: int = typer.Option(16, help="Number of samples to render."),
) -> None:
    """Render meshes from body parameters: overlays, side views and comparison strips."""
    from ihmr.render.predictions import render_params

    paths = render_params(
        predictions,
        out,
        labels=label or None,
        gt=gt,
        image_dir=images,
        side=side,
        size=size,
        first=first,
        count=count,
    )
    typer.echo(f"wrote {len(paths)} PNG(s) to {out}")
