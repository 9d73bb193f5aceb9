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


@pytest.fixture
def resume_rule(ihmr_main, one_line_error, tmp_path):
    """``check(command, config, out, epochs)``: the one resume rule of ``ihmr train``, ``ihmr age
    train`` and ``ihmr depth train`` (``command`` the words before the options), checked through
    the real entry point on a config of ``epochs`` epochs:

    1. ``--config C --out O`` trains ``epochs`` metric rows;
    2. the same again is refused (the error names --resume) and leaves the run untouched;
    3. ``--resume O`` with ``--config`` is refused (the run's saved config.yaml is the config);
    4. ``--resume`` of a folder without a run says there is nothing to resume;
    5. ``--resume O --set optim.epochs=E+1`` continues the run to one more metric row and saves
       the extended config in O.
    """
    import yaml

    def rows(out):
        return (out / "metrics.jsonl").read_text().splitlines()

    def check(command: tuple, config, out, epochs: int) -> None:
        code, said, err = ihmr_main(*command, "--config", config, "--out", out)
        assert code == 0, err
        assert f"run folder: {out}" in said and len(rows(out)) == epochs
        before = (rows(out), (out / "last.pt").read_bytes())
        one_line_error(
            ihmr_main(*command, "--config", config, "--out", out), "already holds a run", "--resume"
        )
        assert (rows(out), (out / "last.pt").read_bytes()) == before
        one_line_error(
            ihmr_main(*command, "--resume", out, "--config", config),
            "config.yaml saved in that run folder",
            "drop --config",
        )
        (tmp_path / "empty").mkdir(exist_ok=True)
        one_line_error(ihmr_main(*command, "--resume", tmp_path / "empty"), "nothing to resume")
        code, said, err = ihmr_main(
            *command, "--resume", out, "--set", f"optim.epochs={epochs + 1}"
        )
        assert code == 0, err
        assert f"run folder: {out}" in said and len(rows(out)) == epochs + 1
        assert rows(out)[:epochs] == before[0]  # continued, not retrained
        assert yaml.safe_load((out / "config.yaml").read_text())["optim"]["epochs"] == epochs + 1

    return check
