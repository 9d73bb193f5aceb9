"""The ``ihmr`` command line: a thin typer shell over library calls.

Each command lives in its own small module of this package and imports the library only inside
its body, so ``ihmr --help`` stays instant. Register a new command with one line below.
"""

from __future__ import annotations

import os
import sys

import typer

from ihmr import __version__
from ihmr.errors import IhmrError, describe_os_error
from ihmr.io import remove_created_dirs_on_failure

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
    typer.echo(__version__)


def _register() -> None:
    # One import per command module; each module's import is cheap (no torch, sklearn, OpenGL).
    from . import commands  # noqa: F401


def main() -> None:
    """Console entry point: expected failures become one line on stderr and exit code 2.

    Expected failures are the package's own errors (:class:`ihmr.errors.IhmrError`: bad
    configuration, data, non-finite values ...) and the OS's file errors (``OSError``: missing
    file, no permission, a file where a folder should be ...). Anything else is a bug and keeps
    its traceback. Folders the failed command created and left empty are removed. Set
    ``IHMR_DEBUG=1`` to see the traceback of an expected failure too.
    """
    _register()
    try:
        with remove_created_dirs_on_failure():
            app()
    except (IhmrError, OSError) as exc:
        if os.environ.get("IHMR_DEBUG"):
            raise
        text = str(exc) if isinstance(exc, IhmrError) else describe_os_error(exc)
        typer.secho(f"error: {' '.join(text.split())}", fg=typer.colors.RED, err=True)
        sys.exit(2)
