"""``ihmr predict`` (images -> SMPL parameters and overlays) and ``ihmr export`` (one model file)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def predict(
    images: Path = typer.Option(..., "--images", "-i", help="Image folder (searched recursively) or one image."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="SPIN model_checkpoint.pt, an `ihmr train` head, or an `ihmr export` file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: predictions.npz, summary.json, overlays/."),
    backbone: Optional[Path] = typer.Option(None, help="For a trained head: the SPIN checkpoint its features came from."),
    boxes: Optional[Path] = typer.Option(None, help="People boxes, JSON or CSV (image,x1,y1,x2,y2[,score])."),
    centers: Optional[Path] = typer.Option(None, help="SPIN-style .npz with imgname, center, scale."),
    detector: str = typer.Option("hog", help="Automatic detection where no box is given: hog or none."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1 ..."),
    batch_size: int = typer.Option(16, help="Crops per forward pass."),
    render: bool = typer.Option(True, "--render/--no-render", help="Write overlay and side-view PNGs."),
    max_people: int = typer.Option(10, help="At most this many detected people per image."),
    smpl_dir: Optional[Path] = typer.Option(None, help="SMPL files folder (default: $IHMR_SMPL_DIR, else the open body)."),
    allow_mismatch: bool = typer.Option(False, help="Run a head on a backbone with another fingerprint."),
) -> None:
    """Find people in images, predict SMPL pose/shape/camera, write predictions and overlays."""
    from ihmr.errors import check_choice
    from ihmr.pose.predict import predict_images

    check_choice(detector, ["hog", "none"], "--detector")
    s = predict_images(images, checkpoint, out, backbone=backbone, boxes=boxes, centers=centers,
                       detector=detector, device=device, batch_size=batch_size, render=render,
                       max_people=max_people, smpl_dir=smpl_dir, allow_mismatch=allow_mismatch,
                       progress=True)
    by = ", ".join(f"{k} {v}" for k, v in s["people_by_source"].items() if v)
    typer.echo(f"{s['people']} people in {s['images_done']} of {s['images']} images ({by}) on "
               f"{s['device']} in {s['seconds']['total']:.1f} s")
    for item in s["skipped"]:
        typer.echo(f"skipped {item['image']}: {item['reason']}")
    for src, left in s["unmatched_entries"].items():
        typer.echo(f"note: {len(left)} --{src} entries match no image (e.g. {left[0]!r})")
    for note in filter(None, [s["hog_unavailable"], s["render"] if isinstance(s["render"], str) else None]):
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {out}/predictions.npz, summary.json" + (", overlays/" if s["render"] is True else ""))


def export(
    checkpoint: Path = typer.Argument(..., help="SPIN model_checkpoint.pt or an `ihmr train` head."),
    out: Path = typer.Option(..., "--out", "-o", help="The combined model file to write (.pt)."),
    backbone: Optional[Path] = typer.Option(None, help="For a head: the SPIN checkpoint its features came from."),
    allow_mismatch: bool = typer.Option(False, help="Accept a backbone with another fingerprint."),
) -> None:
    """Write backbone + head as one checkpoint (SPIN layout) for `ihmr predict`."""
    from ihmr.pose.checkpoints import export_model

    path = export_model(checkpoint, out, backbone, allow_mismatch=allow_mismatch)
    typer.echo(f"wrote {path}")
