"""``ihmr train``: retrain SPIN's HMR head on cached features (MSE / GAI / BMC on the pose)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .options import ConfigOption, OutOption, ResumeOption, SetOption, run_config_args


def train(
    config: Optional[Path] = ConfigOption,
    sets: Optional[List[str]] = SetOption,
    resume: Optional[Path] = ResumeOption,
    out: Optional[Path] = OutOption,
) -> None:
    """Retrain the HMR head; with no arguments, the MSE demo (demo data generated if absent)."""
    from ihmr.config import load_config, to_dict
    from ihmr.pose.config import PoseTrainConfig
    from ihmr.pose.demo import demo_config, ensure_demo_data
    from ihmr.pose.train import train as run_train

    path, overrides, extra = run_config_args(config, sets, out, resume)
    if path is not None:
        cfg = load_config(PoseTrainConfig, path, overrides, extra)
    else:
        typer.echo("no --config given: training the demo (configs/ihmr/demo_mse.yaml)")
        demo = {**to_dict(demo_config("mse")), **(extra or {})}
        cfg = load_config(PoseTrainConfig, None, overrides, demo)
        ensure_demo_data(cfg.data.root, typer.echo)
    res = run_train(cfg, resume=resume is not None)
    typer.echo(
        f"trained {cfg.loss.kind} for {res.epochs} epochs in {res.seconds:.0f} s; "
        f"final loss {res.last_metrics.get('loss_total', float('nan')):.4g}"
    )
    typer.echo(
        f"run folder: {res.run_dir} (head.pt, last.pt, metrics.jsonl, metrics.csv, config.yaml)"
    )
    if res.eval_metrics:
        from ihmr.pose.evaluate import markdown_table

        typer.echo(markdown_table(res.eval_metrics, f"{cfg.loss.kind} on the test set"))
        typer.echo(f"evaluation: {res.run_dir / 'eval'}")
