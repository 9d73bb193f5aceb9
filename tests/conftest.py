"""Shared fixtures: seeded generators, dtype/device parametrisation, tolerances in one table."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

# Tolerances, one table for the whole suite: dtype -> (rtol, atol).
TOL = {
    torch.float64: (1e-9, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.bfloat16: (2e-2, 1e-2),
    torch.float16: (1e-2, 1e-3),
}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # CI has 2 cores; keep torch from oversubscribing them.
    torch.set_num_threads(2)
    yield


@pytest.fixture
def ihmr_main(monkeypatch, capsys):
    """Run the real entry point as ``ihmr ARGS``; returns ``(exit code, stdout, stderr)``."""
    from ihmr.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["ihmr", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            main()
        out = capsys.readouterr()
        return exc.value.code, out.out, out.err

    return run


@pytest.fixture
def one_line_error():
    """``check(result, *needles)``: ``result`` of :func:`ihmr_main` is exit code 2 with one
    ``error:`` line on stderr holding every needle (no traceback); returns that line."""

    def check(result, *needles: str) -> str:
        code, _, err = result
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])
        return lines[0]

    return check
