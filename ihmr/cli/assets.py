"""``ihmr assets``: which SMPL / companion / open-body files were found and which body is in use."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def assets(
    smpl_dir: Optional[Path] = typer.Option(
        None, "--smpl-dir", help="SMPL folder to inspect (default: $IHMR_SMPL_DIR, else none)."
    ),
) -> None:
    """Report the body files found (SMPL, its companion files, the bundled open body)."""
    from ihmr.body.files import inventory

    inv = inventory(smpl_dir)
    where = inv["smpl_dir"] or "not configured (set IHMR_SMPL_DIR or --smpl-dir)"
    typer.echo(f"SMPL folder: {where}" + (f"  [from {inv['source']}]" if inv["source"] else ""))
    width = max(len(name) for name, _ in inv["files"])
    for name, path in inv["files"]:
        typer.echo(f"  {name:<{width}}  {path or 'missing'}")
    typer.echo(f"body in use: {inv['body']}")
