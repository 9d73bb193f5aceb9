"""Registers every command module with the app (one line each; keep imports cheap)."""

from __future__ import annotations

from . import app  # noqa: F401

# Command modules add themselves here, e.g.:
# from .fit_prior import fit_prior; app.command("fit-prior")(fit_prior)
# from .fit_prior import fit_prior; app.command("fit-prior")(fit_prior)
from .fit_prior import fit_prior; app.command("fit-prior")(fit_prior)  # noqa: E402,E702
from .render import render; app.command("render")(render)  # noqa: E402,E702
from .assets import assets; app.command("assets")(assets)  # noqa: E402,E702
