"""``ihmr age ...``: demo data, training (vanilla / RRT), feature extraction, evaluation, demo."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .options import ConfigOption, OutOption, ResumeOption, SetOption, run_config_args

age = typer.Typer(
    help="Age estimation (IMDB-WIKI-DIR, AgeDB-DIR) with Balanced MSE.", no_args_is_help=True
)


@age.command("demo-data")
def demo_data(
    out: Path = typer.Option(Path("data/age-demo"), help="Output folder."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Generate the offline demo (DIR CSV + JPEG images) in seconds."""
    from ihmr.age.demo_data import make_demo

    s = make_demo(out, seed=seed)
    typer.echo(f"wrote {s['csv']}: {s['splits']} ({s['megabytes']} MB)")


@age.command("train")
def train(
    config: Optional[Path] = ConfigOption,
    sets: List[str] = SetOption,
    out: Optional[Path] = OutOption,
    resume: Optional[Path] = ResumeOption,
) -> None:
    """Stage 1 (stage: vanilla) or stage 2 RRT (stage: rrt) from configs/age/*.yaml."""
    from ihmr.age.config import AgeConfig
    from ihmr.age.train import train as run_train
    from ihmr.config import load_config

    path, overrides, extra = run_config_args(config, sets, out, resume)
    cfg = load_config(AgeConfig, path, overrides, extra)
    res = run_train(cfg, resume=resume is not None, log=typer.echo)
    typer.echo(
        f"run folder: {res.run_dir} (selected model: {res.checkpoint}, epoch {res.best['epoch']})"
    )


@age.command("extract-features")
def extract_features(
    checkpoint: Path = typer.Argument(..., help="Stage-1 best.pt."),
    out: Path = typer.Option(Path("features.npz"), help="Output .npz."),
    device: str = typer.Option("auto"),
    workers: int = typer.Option(0),
    float16: bool = typer.Option(False, help="Store float16 (half the size)."),
) -> None:
    """Cache the frozen backbone's features of train/val/test for fast stage-2 training."""
    from ihmr.age.demo import extract_features_to

    p = extract_features_to(
        checkpoint,
        out,
        device=device,
        workers=workers,
        dtype="float16" if float16 else "float32",
        progress=True,
    )
    typer.echo(f"wrote {p}")


@age.command("eval")
def evaluate(
    checkpoint: Path = typer.Argument(..., help="best.pt of an age run."),
    out: Path = typer.Option(Path("eval/age"), help="Output folder."),
    features: Optional[Path] = typer.Option(None, help="Cached features (.npz) instead of images."),
    vanilla: Optional[Path] = typer.Option(
        None, help="Vanilla best.pt: adds its row and gain.png."
    ),
    split: str = typer.Option("test"),
    device: str = typer.Option("auto"),
) -> None:
    """Write metrics.json, table.md (Table 1 layout), per_sample.csv and gain.png (Fig. 5)."""
    from ihmr.age.evaluate import evaluate_age_checkpoint

    res = evaluate_age_checkpoint(
        checkpoint,
        out,
        split=split,
        features=str(features) if features else None,
        vanilla=vanilla,
        device=device,
    )
    typer.echo((out / "table.md").read_text() + "\n" + "\n".join(res["files"]))


@age.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/age-demo"), help="Output folder."),
    vanilla_epochs: int = typer.Option(12, help="Stage-1 epochs."),
) -> None:
    """Whole benchmark on the demo: data, vanilla, features, RRT (MSE/BMC/GAI/BNI/LDS), report."""
    from ihmr.age.demo import run_demo

    res = run_demo(out, vanilla_epochs=vanilla_epochs, log=typer.echo)
    typer.echo(f"report: {res['report']}")
