"""Registers every command module with the app (one line each; keep imports cheap)."""

from __future__ import annotations

from . import app  # noqa: F401

# Command modules add themselves here, e.g.:
# from .fit_prior import fit_prior; app.command("fit-prior")(fit_prior)
from .fit_prior import fit_prior; app.command("fit-prior")(fit_prior)  # noqa: E402,E702
from .render import render; app.command("render")(render)  # noqa: E402,E702
from .split import split; app.command("split")(split)  # noqa: E402,E702
from .eval import eval; app.command("eval")(eval)  # noqa: E402,E702
from .assets import assets; app.command("assets")(assets)  # noqa: E402,E702
from .age import age; app.add_typer(age, name="age")  # noqa: E402,E702
from .demo_data import demo_data; app.command("demo-data")(demo_data)  # noqa: E402,E702
from .extract_features import extract_features; app.command("extract-features")(extract_features)  # noqa: E402,E501,E702
from .predict import predict; app.command("predict")(predict)  # noqa: E402,E702
from .predict import export; app.command("export")(export)  # noqa: E402,E702
from .synth import synth; app.command("synth")(synth)  # noqa: E402,E702
from .depth import depth; app.add_typer(depth, name="depth")  # noqa: E402,E702
from .train import train; app.command("train")(train)  # noqa: E402,E702
from .demo import demo; app.command("demo")(demo)  # noqa: E402,E702
from .tune_sigma import tune_sigma; app.command("tune-sigma")(tune_sigma)  # noqa: E402,E702
