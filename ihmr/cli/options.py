"""Options shared by commands, so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from ihmr.errors import ConfigError

ConfigOption = typer.Option(None, "--config", "-c", help="YAML config file (see configs/).")
SetOption = typer.Option(
    [], "--set", help="Override a config value, e.g. --set train.lr=1e-4 (repeatable)."
)
OutOption = typer.Option(None, "--out", "-o", help="Run folder (default: the config's out).")
ResumeOption = typer.Option(
    None,
    "--resume",
    help="Run folder to continue from its last.pt, with the config.yaml saved "
    "there (--set still applies, e.g. --set optim.epochs=N to extend it).",
)


def run_config_args(
    config: Optional[Path], sets: Optional[List[str]], out: Optional[Path], resume: Optional[Path]
) -> tuple[Optional[Path], list[str], Optional[dict[str, Any]]]:
    """``(path, overrides, extra)`` for :func:`ihmr.config.load_config`: the one resume rule of
    ``ihmr train``, ``ihmr age train`` and ``ihmr depth train``.

    ``--resume RUN_DIR`` continues the run in RUN_DIR with the ``config.yaml`` saved there (so it
    takes neither ``--config`` nor another ``--out``); ``--set`` still applies. Without it the run
    goes to ``--out`` (or the config's ``out``), and the trainer refuses a folder that already
    holds a run (:meth:`ihmr.runs.RunDir.check_resume`).
    """
    if resume is None:
        return config, list(sets or []), {"out": str(out)} if out is not None else None
    if config is not None:
        raise ConfigError(
            f"--resume {str(resume)!r} continues with the config.yaml saved in that "
            f"run folder; drop --config {str(config)!r} (--set still changes a "
            "value)"
        )
    if out is not None and Path(out).resolve() != Path(resume).resolve():
        raise ConfigError(
            f"--resume {str(resume)!r} continues the run in that folder; drop --out {str(out)!r}"
        )
    saved = Path(resume) / "config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(
            f"nothing to resume: {str(saved)!r} does not exist (not a run "
            "folder of a train command); start the run without --resume"
        )
    return saved, list(sets or []), {"out": str(resume)}
