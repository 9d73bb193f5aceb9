"""``ihmr eval``: balanced metrics of any method's predictions or of a checkpoint.

The task comes from ``--task`` or, for ``auto``, from the checkpoint: its ``task`` entry, else its
``kind`` (:data:`KINDS`), else pose (SPIN checkpoints carry neither). Predictions files are pose.
Each task is one small function below that imports its evaluation when called (so that
``ihmr --help`` imports no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ihmr.errors import ConfigError, check_choice
from ihmr.io import load_torch_file

TASKS = ("pose", "age", "depth")
KINDS = {"ihmr-pose-head": "pose", "age": "age", "depth": "depth"}


def _age(checkpoint: Path, out: Path, features: Optional[Path], device: Optional[str]) -> None:
    """Age checkpoints (``kind: age``): DIR and balanced metrics, Table 1 layout."""
    from ihmr.age.evaluate import evaluate_age_checkpoint

    evaluate_age_checkpoint(
        checkpoint, out, features=str(features) if features else None, device=device or "auto"
    )
    typer.echo((Path(out) / "table.md").read_text())
    typer.echo(f"wrote {out}/metrics.json, table.md, per_sample.csv")


def _depth(checkpoint: Path, out: Path, device: Optional[str]) -> None:
    """Depth checkpoints (``kind: depth``): NYUD2-DIR metrics on the balanced mask, Table 2
    layout."""
    from ihmr.depth.evaluate import evaluate_depth_checkpoint

    evaluate_depth_checkpoint(checkpoint, out, device=device or "auto")
    typer.echo(f"wrote {out}/metrics.json and the Table 2 style report")


def _pose(labels: Path, out: Path, **options) -> None:
    """Pose (a head checkpoint, a SPIN checkpoint or a predictions file): the balanced mesh and
    joint errors, printed as a markdown table."""
    from ihmr.pose.evaluate import markdown_table
    from ihmr.pose.jobs import eval_job

    metrics, info = eval_job(labels, out, progress=True, **options)
    typer.echo(markdown_table(metrics, info.get("title", "")))
    if info.get("renders"):
        typer.echo(info["renders"])
    typer.echo(f"wrote {out}/metrics.json, metrics.md, per_sample.npz, per_region.png")


def _task_of(checkpoint: Optional[Path]) -> str:
    if checkpoint is None or not checkpoint.is_file():
        return "pose"

    ckpt = load_torch_file(checkpoint, mmap=True)
    task = "pose"
    if isinstance(ckpt, dict):
        task = ckpt.get("task") or KINDS.get(ckpt.get("kind"), "pose")
    if task not in TASKS:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} is for task {task!r}, which `ihmr eval` "
            f"does not handle (tasks: {list(TASKS)})"
        )
    return task


def eval(  # noqa: A001 - the command is called eval
    labels: Optional[Path] = typer.Option(
        None, "--labels", "-l", help="Pose: test labels (SPIN .npz, e.g. 3dpw_test.npz)."
    ),
    out: Path = typer.Option(Path("runs/eval"), "--out", "-o", help="Output folder."),
    predictions: Optional[Path] = typer.Option(
        None, help="Predictions .npz: pose (N,72|N,24,3,3) + betas, or vertices."
    ),
    checkpoint: Optional[Path] = typer.Option(
        None, help="Head checkpoint (ihmr train) or SPIN model_checkpoint.pt."
    ),
    features: Optional[Path] = typer.Option(
        None, help="Feature store of the test set (with --checkpoint)."
    ),
    images: Optional[Path] = typer.Option(
        None, help="Test images root, instead of --features (SPIN checkpoint)."
    ),
    split: Optional[Path] = typer.Option(
        None, help="Split .npz from `ihmr split` (computed if absent)."
    ),
    task: str = typer.Option("auto", help="auto (from the checkpoint), pose, age or depth."),
    smpl_dir: Optional[Path] = typer.Option(
        None, help="SMPL files folder (default: $IHMR_SMPL_DIR, else the open body)."
    ),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cpu)."),
    chunk: Optional[int] = typer.Option(
        None, help="Samples per body forward (memory ~ chunk x vertices; default 1024)."
    ),
    renders: Optional[int] = typer.Option(
        None, help="Render the K rarest test samples (0: none; default 4)."
    ),
    mpvpe_body: Optional[str] = typer.Option(
        None,
        help="Pose: body of the predicted meshes for MPVPE: gendered (IHMR release, default) "
        "or neutral (SPIN).",
    ),
) -> None:
    """Balanced metrics (bMPVPE, bMPJPE, bPA-MPJPE; all / tail 10% / tail 5%) and plain means."""
    check_choice(task, ["auto", *TASKS], "--task")
    resolved = _task_of(checkpoint) if task == "auto" else task
    if resolved != "pose":
        if checkpoint is None:
            raise ConfigError(
                f"`ihmr eval --task {resolved}` needs --checkpoint "
                f"(an ihmr {resolved} run's best.pt)"
            )
        pose_only = {
            "--labels": labels,
            "--predictions": predictions,
            "--images": images,
            "--split": split,
            "--smpl-dir": smpl_dir,
            "--chunk": chunk,
            "--renders": renders,
            "--mpvpe-body": mpvpe_body,
            **({"--features": features} if resolved == "depth" else {}),
        }
        given = [name for name, value in pose_only.items() if value is not None]
        if given:
            one = len(given) == 1
            raise ConfigError(
                f"{', '.join(given)} {'does' if one else 'do'} not apply to the "
                f"{resolved} checkpoint {str(checkpoint)!r}; leave "
                f"{'it' if one else 'them'} out (pose evaluation only)"
            )
        if resolved == "age":
            _age(checkpoint, out, features, device)
        else:
            _depth(checkpoint, out, device)
        return
    if labels is None:
        raise ConfigError(
            "pose evaluation needs --labels (the test set's SPIN .npz, e.g. 3dpw_test.npz)"
        )
    _pose(
        labels,
        out,
        predictions=predictions,
        checkpoint=checkpoint,
        features=features,
        images=images,
        split=split,
        smpl_dir=smpl_dir,
        device=device,
        chunk=1024 if chunk is None else chunk,
        renders=4 if renders is None else renders,
        mpvpe_body=mpvpe_body or "gendered",
    )
