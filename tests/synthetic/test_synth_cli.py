"""``ihmr synth`` through typer's CliRunner: a tiny run and the bad-input paths."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ihmr.cli import (
    app,
    commands,  # noqa: F401  (registers the commands)
)

runner = CliRunner()
TINY = ["--set", "epochs_1d=4", "--set", "epochs_2d=4", "--set", "epochs_nonlinear=4"]


def test_synth_smoke(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "synth",
            "--out",
            str(out),
            "--distributions",
            "normal,mvn",
            "--skews",
            "high",
            "--seeds",
            "1",
            "--threads",
            "1",
            *TINY,
        ],
    )
    assert res.exit_code == 0, res.output
    recs = json.loads((out / "results.json").read_text())
    assert {r["distribution"] for r in recs} == {"normal", "mvn"}
    assert len(recs) == 2 * 6
    for name in (
        "results.csv",
        "table.md",
        "run.json",
        "nonlinear.json",
        "fig2_linear_1d.png",
        "fig3_mvn_marginals.png",
        "fig4_nonlinear.png",
        "fig7_seeds.png",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "run.json").read_text())["config"]["epochs_1d"] == 4
    assert "Vanilla" in res.output
    # each record's test MSE is that of its reported line on the setting's test set, by hand:
    # mean over samples and label dimensions of (W x + b - y)^2
    import numpy as np

    from ihmr.synthetic import spec as S
    from ihmr.synthetic.data import make_dataset

    for r in recs:
        protocol = S.PROTOCOL_2D if r["distribution"] == "mvn" else S.PROTOCOL_1D
        d = make_dataset(r["distribution"], r["skew"], r["seed"], protocol)
        err = d.x_test @ np.array(r["weight"]).T + np.array(r["bias"]) - d.y_test
        assert d.y_test.shape == (protocol.n_test, 2 if r["distribution"] == "mvn" else 1)
        assert r["test_mse"] == pytest.approx((err**2).mean(), rel=1e-9), r["method"]
        assert r["val_mse"] >= 0 and 1 <= r["selected_epoch"] <= 4
    vanilla = next(r for r in recs if r["method"] == "vanilla" and r["distribution"] == "normal")
    assert f"{vanilla['test_mse']:.3f} ± 0.000" in (out / "table.md").read_text()


@pytest.mark.parametrize(
    "args,match",
    [
        (["--distributions", "norml"], "did you mean 'normal'"),
        (["--skews", "extreme"], "skew must be one of"),
        (["--methods", "vanila"], "did you mean 'vanilla'"),
        (["--seeds", "0"], "seeds must be an integer >= 1"),
    ],
)
def test_synth_bad_input_writes_nothing(tmp_path, args, match):
    out = tmp_path / "run"
    res = runner.invoke(app, ["synth", "--out", str(out), *args, *TINY])
    assert res.exit_code != 0
    assert match in str(res.exception)
    assert not out.exists()


def test_synth_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = runner.invoke(
        app,
        [
            "synth",
            "--out",
            str(blocker / "run"),
            "--distributions",
            "normal",
            "--skews",
            "high",
            "--seeds",
            "1",
            *TINY,
        ],
    )
    assert isinstance(res.exception, PermissionError)
    assert f"{str(blocker)!r} is a file, not a folder" in str(res.exception)
