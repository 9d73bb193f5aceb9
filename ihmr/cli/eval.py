"""``ihmr eval``: balanced metrics of any method's predictions or of a checkpoint.

Tasks plug in through :data:`TASKS` (task name -> "module:function" taking the command's options).
The task comes from ``--task`` or, for ``auto``, from the checkpoint: its ``task`` entry, else its
``kind`` (:data:`KINDS`), else pose (SPIN checkpoints carry neither). Predictions files are pose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

TASKS = {"pose": "ihmr.pose.jobs:eval_job"}
KINDS = {"ihmr-pose-head": "pose"}


def _task_of(checkpoint: Optional[Path]) -> str:
    if checkpoint is None or not checkpoint.is_file():
        return "pose"
    import torch

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    task = "pose"
    if isinstance(ckpt, dict):
        task = ckpt.get("task") or KINDS.get(ckpt.get("kind"), "pose")
    if task not in TASKS:
        raise ValueError(f"checkpoint {str(checkpoint)!r} is for task {task!r}, which `ihmr eval` "
                         f"does not handle (tasks: {list(TASKS)})")
    return task


def eval(  # noqa: A001 - the command is called eval
    labels: Path = typer.Option(..., "--labels", "-l", help="Test labels (SPIN .npz, e.g. 3dpw_test.npz)."),
    out: Path = typer.Option(Path("runs/eval"), "--out", "-o", help="Output folder."),
    predictions: Optional[Path] = typer.Option(None, help="Predictions .npz: pose (N,72|N,24,3,3) + betas, or vertices."),
    checkpoint: Optional[Path] = typer.Option(None, help="Head checkpoint (ihmr train) or SPIN model_checkpoint.pt."),
    features: Optional[Path] = typer.Option(None, help="Feature store of the test set (with --checkpoint)."),
    images: Optional[Path] = typer.Option(None, help="Test images root, instead of --features (SPIN checkpoint)."),
    split: Optional[Path] = typer.Option(None, help="Split .npz from `ihmr split` (computed if absent)."),
    task: str = typer.Option("auto", help="auto, pose (age and depth plug in later)."),
    smpl_dir: Optional[Path] = typer.Option(None, help="SMPL files folder (default: $IHMR_SMPL_DIR, else the open body)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cpu)."),
    chunk: int = typer.Option(1024, help="Samples per body forward (memory ~ chunk x vertices)."),
    renders: int = typer.Option(4, help="Render the K rarest test samples (0: none)."),
) -> None:
    """Balanced metrics (bMPVPE, bMPJPE, bPA-MPJPE; all / tail 10% / tail 5%) and plain means."""
    import importlib

    from ihmr.errors import check_choice

    check_choice(task, ["auto", *TASKS], "--task")
    module, func = TASKS[_task_of(checkpoint) if task == "auto" else task].split(":")
    job = getattr(importlib.import_module(module), func)
    metrics, info = job(labels, out, predictions=predictions, checkpoint=checkpoint,
                        features=features, images=images, split=split, smpl_dir=smpl_dir,
                        device=device, chunk=chunk, renders=renders, progress=True)
    from ihmr.pose.evaluate import markdown_table

    typer.echo(markdown_table(metrics, info.get("title", "")))
    if info.get("renders"):
        typer.echo(info["renders"])
    typer.echo(f"wrote {out}/metrics.json, metrics.md, per_sample.npz, per_region.png")
