"""``ihmr demo-data``: generate the offline IHMR-style demo dataset (SPIN npz + feature stores)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .options import ConfigOption, SetOption


def demo_data(
    out: Path = typer.Option(Path("data/demo"), "--out", "-o", help="Output folder."),
    config: Optional[Path] = ConfigOption,
    sets: Optional[List[str]] = SetOption,
    n_train: Optional[int] = typer.Option(None, help="Training samples (default 20000)."),
    n_test: Optional[int] = typer.Option(None, help="Test samples (default 2000)."),
    seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
) -> None:
    """Long-tailed training poses, a balanced test set; features see each pose through isotropic
    rotation noise (open body)."""
    from ihmr.config import load_config, save_config
    from ihmr.pose.demo_data import DemoConfig, make_demo

    extra = {
        k: v for k, v in dict(n_train=n_train, n_test=n_test, seed=seed).items() if v is not None
    }
    cfg = load_config(DemoConfig, config, sets or [], extra)
    meta = make_demo(out, cfg)
    save_config(cfg, Path(out) / "config.yaml")
    for name, s in meta["sets"].items():
        typer.echo(f"{name}: {s['count']} samples -> {s['labels']}, {s['features']}")
    typer.echo(f"done in {meta['seconds']} s; metadata in {out}/demo.json")
