"""The ``ihmr`` command line: a thin typer shell over library calls.

Each command lives in its own small module of this package and imports the library only inside
its body, so ``ihmr --help`` stays instant. Register a new command with one line below.
"""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(
    name="ihmr",
    help="Balanced MSE for imbalanced visual regression (Ren et al., CVPR 2022).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Balanced MSE for imbalanced visual regression (Ren et al., CVPR 2022)."""


@app.command()
def version() -> None:
    """Print the ihmr version."""
    from ihmr import __version__

    typer.echo(__version__)


def _register() -> None:
    # One import per command module; each module's import is cheap (no torch, sklearn, OpenGL).
    from . import commands  # noqa: F401


def main() -> None:
    """Console entry point: user errors become a one-line message and exit code 2."""
    from ihmr.errors import IhmrError

    _register()
    try:
        app()
    except (IhmrError, FileNotFoundError, PermissionError, ValueError) as exc:
        if os.environ.get("IHMR_DEBUG"):
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
