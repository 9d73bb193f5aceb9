"""``ihmr synth``: the synthetic benchmark (paper Table 4, Figs. 2, 3, 4 and 7)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ihmr.io import check_writable_dir

from .options import ConfigOption, SetOption


def _names(value: Optional[str]) -> Optional[list]:
    return [v.strip() for v in value.split(",") if v.strip()] if value is not None else None


def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if needed)."),
    distributions: Optional[str] = typer.Option(
        None, help="Comma-separated subset of normal,exponential,mvn (default: all)."
    ),
    skews: Optional[str] = typer.Option(None, help="Subset of high,moderate,low (default: all)."),
    methods: Optional[str] = typer.Option(
        None, help="Subset of vanilla,reweight,gai_true,gai,bmc_true,bmc (default: all)."
    ),
    seeds: Optional[int] = typer.Option(None, help="Seeds per setting (default 5)."),
    nonlinear: Optional[bool] = typer.Option(
        None, "--nonlinear/--no-nonlinear", help="Also run the nonlinear Fig. 4 (default on)."
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the figures."),
    threads: Optional[int] = typer.Option(
        None, help="CPU threads of torch and the compiled kernels (default: all cores)."
    ),
    config: Optional[Path] = ConfigOption,
    sets: Optional[List[str]] = SetOption,
) -> None:
    """Reproduce the synthetic benchmark: results.json/.csv, table.md and figures under --out."""
    from ihmr.config import load_config
    from ihmr.synthetic import SynthConfig, run_with_progress, write_outputs

    extra = {
        k: v
        for k, v in {
            "distributions": _names(distributions),
            "skews": _names(skews),
            "methods": _names(methods),
            "seeds": seeds,
            "nonlinear": nonlinear,
        }.items()
        if v is not None
    }
    cfg = load_config(SynthConfig, config, list(sets or []), extra=extra).validate()
    check_writable_dir(out)
    result = run_with_progress(cfg, threads=threads)
    paths = write_outputs(result, out, figures=figures)
    typer.echo((out / "table.md").read_text())
    typer.echo(f"wrote {len(paths)} files to {out}")
