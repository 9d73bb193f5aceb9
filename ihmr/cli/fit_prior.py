"""``ihmr fit-prior``: fit a GMM or bin prior to a label file and write it as ``.npz``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ihmr.errors import ConfigError, check_choice
from ihmr.io import check_writable_file


def fit_prior(
    labels: Path = typer.Argument(..., help="Label file: .npy, .npz (--key) or .csv (--column)."),
    out: Path = typer.Option(..., "--out", "-o", help="Prior file to write (.npz)."),
    kind: str = typer.Option("gmm", help="gmm (GAI) or bins (BNI / LDS / reweighting)."),
    components: int = typer.Option(8, "--components", "-k", help="GMM components K."),
    covariance: str = typer.Option("full", help="GMM covariance: full or diag."),
    key: Optional[str] = typer.Option(None, help="Array name inside an .npz label file."),
    column: Optional[str] = typer.Option(None, help="CSV column name(s), comma-separated."),
    pose_to_rotmat: bool = typer.Option(
        False, help="Axis-angle (N, 72) -> rotation matrices (N, 216)."
    ),
    max_samples: Optional[int] = typer.Option(None, help="Fit the GMM on a random subsample."),
    max_iter: int = typer.Option(200, help="GMM EM iterations."),
    seed: int = typer.Option(0, help="Seed of the GMM fit and the subsample."),
    bins: Optional[str] = typer.Option(None, help="Equal-width bins start:stop:count (0:10:100)."),
    bin_width: Optional[float] = typer.Option(None, help="Bins of this width covering the labels."),
    lds: bool = typer.Option(False, "--lds/--no-lds", help="Smooth bin counts with LDS."),
    lds_kernel: str = typer.Option("gaussian", help="LDS kernel: gaussian, triangular or laplace."),
    lds_ks: int = typer.Option(5, help="LDS kernel size (odd)."),
    lds_sigma: float = typer.Option(2.0, help="LDS kernel sigma."),
) -> None:
    """Fit a label prior (GMM for GAI, histogram for BNI) and write it atomically as .npz."""
    from ihmr import priors

    check_choice(kind, ("gmm", "bins"), "--kind")
    if kind == "gmm" and (bins or bin_width or lds):
        raise ConfigError("--bins, --bin-width and --lds apply to --kind bins only")
    if kind == "bins" and (bins is None) == (bin_width is None):
        raise ConfigError("--kind bins needs exactly one of --bins start:stop:count or --bin-width")
    check_writable_file(out, "prior file (--out)")
    cols = column.split(",") if column and "," in column else column
    y = priors.read_labels(labels, key=key, column=cols, pose_to_rotmat=pose_to_rotmat)
    rep = "rotmat" if pose_to_rotmat else (key or column or labels.stem)
    meta = {"label_representation": rep, "source": str(labels)}
    if kind == "gmm":
        prior = priors.fit_gmm(
            y,
            components,
            covariance_type=covariance,
            seed=seed,
            max_samples=max_samples,
            max_iter=max_iter,
            metadata=meta,
        )
    else:
        edges = priors.parse_bins(bins) if bins else priors.edges_from_width(y, bin_width)
        spec = priors.LDS(lds_kernel, lds_ks, lds_sigma) if lds else None
        prior = priors.histogram_prior(y, edges, lds=spec, metadata=meta)
    prior.save(out)
    _print_summary(prior.summary(y), out)


def _print_summary(summary: dict, out: Path) -> None:
    table = Table(title=f"{summary.pop('kind')} prior", show_header=False)
    for name, value in summary.items():
        if isinstance(value, list) and value and isinstance(value[0], (float, list)):
            value = _fmt(value)
        elif isinstance(value, float):
            value = f"{value:.4f}"
        table.add_row(name, str(value))
    console = Console()
    console.print(table)
    console.print(f"wrote {out}")


def _fmt(values: list) -> str:
    if isinstance(values[0], list):
        return "\n".join(_fmt(v) for v in values)
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
