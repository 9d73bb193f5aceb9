"""``ihmr assets``: the table of found body files and the body in use."""

from __future__ import annotations

from typer.testing import CliRunner

from ihmr.body.testing import write_smpl_folder


def _app():
    from ihmr.cli import _register, app

    _register()
    return app


def test_assets_lists_found_and_missing_files(tmp_path, monkeypatch):
    monkeypatch.delenv("IHMR_SMPL_DIR", raising=False)
    folder = write_smpl_folder(tmp_path / "smpl", n_vertices=20, genders=("neutral", "female"))
    res = CliRunner().invoke(_app(), ["assets", "--smpl-dir", str(folder)])
    assert res.exit_code == 0, res.output
    lines = {ln.split()[0]: ln for ln in res.output.splitlines() if ln.startswith("  ")}
    assert lines["SMPL_NEUTRAL.pkl/.npz"].endswith("SMPL_NEUTRAL.npz")
    assert lines["SMPL_MALE.pkl/.npz"].endswith("missing")
    assert lines["J_regressor_h36m.npy"].endswith("J_regressor_h36m.npy")
    assert f"body in use: SMPL from {folder}" in res.output


def test_assets_without_configuration_names_open_body(monkeypatch):
    monkeypatch.delenv("IHMR_SMPL_DIR", raising=False)
    res = CliRunner().invoke(_app(), ["assets"])
    assert res.exit_code == 0
    assert "not configured" in res.output and "body in use: open body" in res.output
