"""Registers every command module with the app (one line each; keep imports cheap)."""

from __future__ import annotations

from . import app
from .age import age
from .assets import assets
from .demo import demo
from .demo_data import demo_data
from .depth import depth
from .eval import eval
from .extract_features import extract_features
from .fit_prior import fit_prior
from .predict import export, predict
from .render import render
from .split import split
from .synth import synth
from .train import train
from .tune_sigma import tune_sigma

# the order of `ihmr --help`
app.command("fit-prior")(fit_prior)
app.command("render")(render)
app.command("split")(split)
app.command("eval")(eval)
app.command("assets")(assets)
app.add_typer(age, name="age")
app.command("demo-data")(demo_data)
app.command("extract-features")(extract_features)
app.command("predict")(predict)
app.command("export")(export)
app.command("synth")(synth)
app.add_typer(depth, name="depth")
app.command("train")(train)
app.command("demo")(demo)
app.command("tune-sigma")(tune_sigma)
