"""``ihmr extract-features``: SPIN crops -> ResNet-50 features, resumable, CPU/GPU/torchrun."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def extract_features(
    labels: Path = typer.Argument(..., help="SPIN label file (dataset_extras/*.npz)."),
    images: Path = typer.Option(
        ..., "--images", "-i", help="Dataset root the imgname paths are relative to."
    ),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", help="SPIN model_checkpoint.pt (its backbone is used)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Feature store folder (rerun to resume)."),
    views: int = typer.Option(
        0, help="Also store K augmented views per image (flip, rotation, scale, colour)."
    ),
    batch_size: int = typer.Option(64, help="Images per forward."),
    shard_size: int = typer.Option(2048, help="Samples per shard (the unit of resumption)."),
    device: Optional[str] = typer.Option(
        None, help="cpu, cuda, cuda:1 (default: this rank's GPU if any)."
    ),
    workers: int = typer.Option(4, help="Image-decoding threads."),
    seed: int = typer.Option(0, help="Seed of the augmented views."),
    overwrite: bool = typer.Option(False, help="Discard an existing store in --out."),
) -> None:
    """Extract backbone features for every sample; split across GPUs with torchrun."""
    from ihmr.pose.extract import extract

    res = extract(
        labels,
        images,
        out,
        checkpoint=checkpoint,
        batch_size=batch_size,
        device=device,
        views=views,
        shard_size=shard_size,
        seed=seed,
        workers=workers,
        overwrite=overwrite,
        progress=True,
    )
    state = "complete" if res["complete"] else "waiting for other ranks' shards"
    typer.echo(
        f"wrote {res['shards_written']} shard(s) to {res['store']} in {res['seconds']} s "
        f"on {res['device']} ({state})"
    )
