"""`ihmr render` end to end on the open body (skipped without an OpenGL backend)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from ihmr.render import backend_problem

pytestmark = [
    pytest.mark.render,
    pytest.mark.skipif(backend_problem() is not None, reason=str(backend_problem())),
]
runner = CliRunner()


def _app():
    from ihmr.cli import _register, app

    _register()
    return app


def _params(n=2, cam=True, names=True):
    pose = np.zeros((n, 72), np.float32)
    pose[:, 0] = np.pi  # SPIN's camera frame: 180 degrees about x
    d = {"pose": pose, "betas": np.zeros((n, 10), np.float32)}
    if cam:
        d["cam"] = np.tile(np.float32([0.9, 0.0, 0.0]), (n, 1))
    if names:
        d["imgname"] = np.array([f"img{i}.png" for i in range(n)])
    return d


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_parameters_alone_to_png(tmp_path):
    from ihmr.io import read_image

    np.savez(tmp_path / "p.npz", **_params(n=2, cam=False, names=False))
    res = runner.invoke(
        _app(), ["render", str(tmp_path / "p.npz"), "--out", str(tmp_path / "o"), "--size", "96"]
    )
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "o").glob("*.png"))
    assert [f.name for f in files] == ["00000_sample.png", "00001_sample.png"]
    img = read_image(files[0])
    assert img.shape == (96, 96, 3)
    body = (img < 250).any(-1)
    assert 0.05 < body.mean() < 0.6  # auto-framed: the body is there, the rest stays white
    ys, xs = np.nonzero(body)
    assert np.ptp(ys) > 0.6 * 96 or np.ptp(xs) > 0.6 * 96


def test_comparison_strip_over_images(tmp_path):
    from ihmr.io import read_image
    from ihmr.render import save_png

    images = tmp_path / "imgs"
    for i in range(2):
        save_png(images / f"img{i}.png", np.full((64, 64, 3), (30, 120, 200), np.uint8))
    np.savez(tmp_path / "a.npz", **_params())
    b = _params()
    b["pose"][:, 16 * 3 + 2] = -1.0  # method B lowers the left arm
    np.savez(tmp_path / "b.npz", **b)
    gt = _params(cam=False)
    gt["gender"] = np.array(["m", "f"])
    np.savez(tmp_path / "gt.npz", **gt)
    args = [
        "render",
        str(tmp_path / "a.npz"),
        str(tmp_path / "b.npz"),
        "--gt",
        str(tmp_path / "gt.npz"),
        "--images",
        str(images),
        "--label",
        "A",
        "--label",
        "B",
        "--out",
        str(tmp_path / "o"),
        "--size",
        "64",
        "--count",
        "1",
    ]
    res = runner.invoke(_app(), args)
    assert res.exit_code == 0, res.output
    (path,) = (tmp_path / "o").glob("*.png")
    strip = read_image(path)
    bar = 16
    assert strip.shape == (64 + bar, 4 * 64 + 3 * 4, 3)  # image | ground truth | A | B
    panels = [strip[bar:, k * 68 : k * 68 + 64] for k in range(4)]
    assert (panels[0] == (30, 120, 200)).all()  # the image panel is the image
    for p in panels[1:]:
        assert ((p != (30, 120, 200)).any(-1)).mean() > 0.05  # a body is drawn on each
    # ground truth and A share pose and camera, so their silhouettes agree; B differs
    sil = [(p != (30, 120, 200)).any(-1) for p in panels[1:]]
    assert (sil[0] ^ sil[1]).mean() < 0.01 and (sil[1] ^ sil[2]).mean() > 0.01


def test_bad_file_is_a_one_line_error_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from ihmr.cli import main

    np.savez(tmp_path / "bad.npz", betas=np.zeros((2, 10)))
    monkeypatch.setattr(
        sys, "argv", ["ihmr", "render", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o")]
    )
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "needs 'pose'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
