"""Options shared by commands, so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

ConfigOption = typer.Option(None, "--config", "-c", help="YAML config file (see configs/).")
SetOption = typer.Option(
    [], "--set", help="Override a config value, e.g. --set train.lr=1e-4 (repeatable)."
)


def config_args(config: Optional[Path], sets: Optional[List[str]]) -> tuple:
    """Return ``(path, overrides)`` ready for :func:`ihmr.config.load_config`."""
    return config, list(sets or [])
