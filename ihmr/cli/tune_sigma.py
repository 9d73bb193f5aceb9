"""``ihmr tune-sigma``: choose Balanced MSE's sigma on a balanced validation set (docs/sigma.md)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ihmr.errors import ConfigError

from .options import SetOption


def tune_sigma(
    config: Path = typer.Argument(
        ...,
        help="A pose (configs/ihmr), age (stage-2, configs/age) "
        "or depth (configs/depth) config with a Balanced MSE loss.",
    ),
    grid: Optional[str] = typer.Option(
        None,
        help="Comma-separated sigmas to try (default per "
        "task: pose 0.02..0.5, age 1..16, depth 0.1..3).",
    ),
    budget_epochs: Optional[int] = typer.Option(
        None,
        "--budget-epochs",
        help="Fine-tune each sigma for K epochs from one shared "
        "MSE-trained start (default: a full run per sigma).",
    ),
    refine: int = typer.Option(
        0, help="Parabolic refinement steps between grid points (one more candidate each)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output folder (default: the config's out + _tune_sigma)."
    ),
    task: str = typer.Option("auto", help="auto, pose, age or depth."),
    sets: Optional[List[str]] = SetOption,
) -> None:
    """Train one candidate per sigma, score it on held-out training data (never the test set);
    write table.md/.csv, curve.png, search.json and chosen.yaml (the config with that sigma)."""
    from ihmr.sigma.tasks import tune

    try:
        values = None if grid is None else [float(v) for v in grid.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"--grid must be comma-separated numbers, got {grid!r}") from exc
    res = tune(
        config,
        task=task,
        grid=values,
        budget_epochs=budget_epochs,
        refine=refine,
        out=out,
        sets=list(sets or []),
        log=typer.echo,
    )
    typer.echo((res["out"] / "table.md").read_text())
    typer.echo(f"chosen config: {res['files']['config']} (train it: see docs/sigma.md)")
    typer.echo(f"wrote {res['out']}: table.md, table.csv, curve.png, search.json, chosen.yaml")
