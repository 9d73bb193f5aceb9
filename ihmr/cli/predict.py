"""``ihmr predict`` (images -> SMPL parameters and overlays), ``ihmr export`` (one model file)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ihmr.errors import check_choice


def predict(
    images: Path = typer.Option(
        ..., "--images", "-i", help="Image folder (searched recursively) or one image."
    ),
    checkpoint: Path = typer.Option(
        ...,
        "--checkpoint",
        help="SPIN model_checkpoint.pt, an `ihmr train` head, or an `ihmr export` file.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: predictions.npz, summary.json, overlays/."
    ),
    backbone: Optional[Path] = typer.Option(
        None, help="For a trained head: the SPIN checkpoint its features came from."
    ),
    boxes: Optional[Path] = typer.Option(
        None, help="People boxes from any detector, JSON or CSV (image,x1,y1,x2,y2[,score])."
    ),
    centers: Optional[Path] = typer.Option(
        None, help="SPIN-style .npz with imgname, center, scale."
    ),
    detector: str = typer.Option(
        "auto",
        help="Where no box is given: auto (OpenCV face/profile/upper/full-body cascades + HOG), "
        "hog, dnn (--detector-model), none.",
    ),
    detector_model: Optional[Path] = typer.Option(
        None,
        help="A local ONNX person detector (YOLOv8/YOLO11 export) run by OpenCV's DNN module; "
        "implies --detector dnn.",
    ),
    person_class: int = typer.Option(
        0, help="Class index of people in --detector-model (0 in COCO)."
    ),
    score_threshold: float = typer.Option(
        0.3, help="Keep detections scoring at least this (0..1)."
    ),
    min_size: float = typer.Option(
        0.0, help="Drop detected people whose box is less than this many px tall."
    ),
    max_people: int = typer.Option(
        10, help="At most this many detected people per image (best first)."
    ),
    fallback: str = typer.Option(
        "none",
        help="When nobody is found: none (list the image) or whole-image (one person spanning it).",
    ),
    show_boxes: bool = typer.Option(
        False, "--show-boxes", help="Draw the boxes with their source and score on the overlays."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1 ..."),
    batch_size: int = typer.Option(16, help="Crops per forward pass."),
    render: bool = typer.Option(
        True, "--render/--no-render", help="Write overlay and side-view PNGs."
    ),
    smpl_dir: Optional[Path] = typer.Option(
        None, help="SMPL files folder (default: $IHMR_SMPL_DIR, else the open body)."
    ),
    allow_mismatch: bool = typer.Option(
        False, help="Run a head on a backbone with another fingerprint."
    ),
) -> None:
    """Find people in images, predict SMPL pose/shape/camera, write predictions and overlays."""
    from ihmr.pose.detectors import DETECTORS
    from ihmr.pose.predict import PredictOptions, predict_images

    check_choice(detector, list(DETECTORS), "--detector")
    check_choice(fallback, ["none", "whole-image"], "--fallback")
    opts = PredictOptions(
        backbone=backbone,
        boxes=boxes,
        centers=centers,
        detector=detector,
        detector_model=detector_model,
        person_class=person_class,
        score_threshold=score_threshold,
        min_size=min_size,
        max_people=max_people,
        fallback=fallback,
        show_boxes=show_boxes,
        device=device,
        batch_size=batch_size,
        render=render,
        smpl_dir=smpl_dir,
        allow_mismatch=allow_mismatch,
        progress=True,
    )
    s = predict_images(images, checkpoint, out, opts)
    for entry in s["per_image"]:
        typer.echo(image_line(entry))
    for item in s["skipped"]:
        typer.echo(f"skipped {item['image']}: {item['reason']}")
    by = ", ".join(f"{k} {v}" for k, v in s["people_by_source"].items() if v)
    typer.echo(
        f"{s['people']} people in {s['images_done']} of {s['images']} images"
        + (f" ({by})" if by else "")
        + f" on {s['device']} in {s['seconds']['total']:.1f} s"
    )
    if s["nobody"]:
        typer.echo(
            f"nobody found in {len(s['nobody'])} images: {', '.join(s['nobody'])}"
            " (--fallback whole-image keeps them as one person)"
        )
    for src, left in s["unmatched_entries"].items():
        typer.echo(f"note: {len(left)} --{src} entries match no image (e.g. {left[0]!r})")
    for note in s["detector_notes"] + ([s["render"]] if isinstance(s["render"], str) else []):
        typer.echo(f"note: {note}")
    drawn = s["render"] is True or s["show_boxes"]
    typer.echo(f"wrote {out}/predictions.npz, summary.json" + (", overlays/" if drawn else ""))


def image_line(entry: dict) -> str:
    """One line per image: ``a.jpg: 2 people (face 1, hog 1)`` or ``a.jpg: nobody found``."""
    n = entry["people"]
    if not n:
        return f"{entry['image']}: nobody found"
    by = ", ".join(f"{k} {v}" for k, v in entry["by_source"].items())
    return f"{entry['image']}: {n} {'person' if n == 1 else 'people'} ({by})"


def export(
    checkpoint: Path = typer.Argument(
        ..., help="SPIN model_checkpoint.pt or an `ihmr train` head."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The combined model file to write (.pt)."),
    backbone: Optional[Path] = typer.Option(
        None, help="For a head: the SPIN checkpoint its features came from."
    ),
    allow_mismatch: bool = typer.Option(False, help="Accept a backbone with another fingerprint."),
) -> None:
    """Write backbone + head as one checkpoint (SPIN layout) for `ihmr predict`."""
    from ihmr.pose.checkpoints import export_model

    path = export_model(checkpoint, out, backbone, allow_mismatch=allow_mismatch)
    typer.echo(f"wrote {path}")
