"""`ihmr fit-prior` through typer's CliRunner and the real entry point (exit codes, messages)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from ihmr.cli import app, main
from ihmr.priors import BinPrior, GMMPrior

runner = CliRunner()


def _registered():
    from ihmr.cli import _register

    _register()
    return app


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "ages.csv"
    rows = [f"{a},img{i}.jpg" for i, a in enumerate([20, 21, 22, 23, 25, 60, 61, 62, 63, 64])]
    path.write_text("age,path\n" + "\n".join(rows) + "\n")
    return path


def run_main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["ihmr", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr()


def test_gmm_from_csv(tmp_path, csv_file):
    out = tmp_path / "prior.npz"
    res = runner.invoke(
        _registered(),
        [
            "fit-prior",
            str(csv_file),
            "--out",
            str(out),
            "--column",
            "age",
            "-k",
            "2",
            "--max-iter",
            "50",
        ],
    )
    assert res.exit_code == 0, res.output
    p = GMMPrior.load(out)
    assert p.n_components == 2 and p.dim == 1
    # two well-separated groups: each component sits on its group's mean
    np.testing.assert_allclose(np.sort(p.means[:, 0]), [22.2, 62.0], atol=1e-6)
    assert p.metadata["label_representation"] == "age" and p.metadata["n_samples_fitted"] == 10
    for text in ("weights", "means", "avg_log_likelihood", str(out.name)):
        assert text in res.output
    ll = GMMPrior.load(out).log_prob(np.array([20, 21, 22, 23, 25, 60, 61, 62, 63, 64.0])).mean()
    assert f"{ll:.4f}" in res.output


def test_bins_with_lds_from_npz(tmp_path, rng):
    from scipy.ndimage import convolve1d

    y = rng.uniform(0, 10, 200)
    np.savez(tmp_path / "labels.npz", depth=y, other=np.zeros(3))
    out = tmp_path / "bins.npz"
    res = runner.invoke(
        _registered(),
        [
            "fit-prior",
            str(tmp_path / "labels.npz"),
            "--key",
            "depth",
            "--out",
            str(out),
            "--kind",
            "bins",
            "--bins",
            "0:10:10",
            "--lds",
            "--lds-kernel",
            "triangular",
            "--lds-ks",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    p = BinPrior.load(out)
    counts = np.histogram(y, np.linspace(0, 10, 11))[0].astype(float)
    np.testing.assert_allclose(p.smoothed, convolve1d(counts, [0.5, 1.0, 0.5], mode="constant"))


def test_pose_to_rotmat_diag_prior(tmp_path, rng):
    pose = rng.normal(scale=0.3, size=(40, 72))
    np.savez(tmp_path / "spin.npz", pose=pose, shape=np.zeros((40, 10)))
    out = tmp_path / "ihmr_prior.npz"
    res = runner.invoke(
        _registered(),
        [
            "fit-prior",
            str(tmp_path / "spin.npz"),
            "--key",
            "pose",
            "--pose-to-rotmat",
            "-k",
            "2",
            "--covariance",
            "diag",
            "--max-iter",
            "20",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    p = GMMPrior.load(out)
    assert p.dim == 216 and p.metadata["label_representation"] == "rotmat"
    assert "mean_norms" in res.output


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--column", "ages"], "no column 'ages' (did you mean 'age'?)"),
        (["--column", "age", "-k", "20"], "cannot fit 20 components to 10 label(s)"),
        (["--column", "age", "--kind", "bin"], "did you mean 'bins'"),
        (["--column", "age", "--kind", "bins"], "exactly one of --bins"),
        (["--column", "age", "--bins", "0:10:5"], "apply to --kind bins only"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path, csv_file, monkeypatch, capsys, extra, message
):
    out = tmp_path / "prior.npz"
    code, cap = run_main(monkeypatch, capsys, "fit-prior", csv_file, "--out", out, *extra)
    assert code == 2
    assert cap.err.startswith("error: ") and message in cap.err.replace("\n", " ")
    assert not out.exists() and list(tmp_path.iterdir()) == [csv_file]


def test_nan_labels_rejected(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "y.npy", np.array([1.0, np.nan, 2.0, 3.0]))
    code, cap = run_main(
        monkeypatch, capsys, "fit-prior", tmp_path / "y.npy", "--out", tmp_path / "p.npz", "-k", "1"
    )
    assert code == 2 and "1 of 4 row(s) with NaN or inf" in cap.err
    assert not (tmp_path / "p.npz").exists()
