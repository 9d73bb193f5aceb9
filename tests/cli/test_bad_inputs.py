"""Bad input through the real entry point: one clear line, exit code 2, nothing left behind.

One test per case a new user ran into; each also checks that no output (file or folder) is left.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch


def _labels(tmp_path: Path, n: int = 12, **drop) -> Path:
    """A SPIN-format test file of a custom set (imgname, center, scale, pose, shape, gender)."""
    rng = np.random.default_rng(0)
    arrs = dict(
        imgname=np.array([f"img_{i:03d}.jpg" for i in range(n)]),
        center=rng.uniform(100, 200, (n, 2)),
        scale=rng.uniform(0.8, 1.2, n),
        pose=rng.normal(0, 0.2, (n, 72)),
        shape=rng.normal(0, 1, (n, 10)),
        gender=np.array(["m", "f"])[rng.integers(0, 2, n)],
    )
    arrs.update(drop)
    arrs = {k: v for k, v in arrs.items() if v is not None}
    path = tmp_path / "my_test.npz"  # not a known SPIN name: only imgname/center/scale required
    np.savez(path, **arrs)
    return path


def _predictions(tmp_path: Path, n: int = 12, pose=None) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "pred.npz"
    np.savez(
        path,
        pose=rng.normal(0, 0.2, (n, 72)) if pose is None else pose,
        betas=rng.normal(0, 1, (n, 10)),
    )
    return path


@pytest.fixture
def unwritable_dir(tmp_path) -> Path:
    """An existing folder where files cannot be created (root ignores permission bits: then a
    sysfs folder, which refuses new files even to root)."""
    if os.geteuid() != 0:
        d = tmp_path / "read-only"
        d.mkdir()
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    d = Path("/sys/kernel")
    try:
        fd, probe = tempfile.mkstemp(dir=d)
    except OSError:
        yield d
        return
    os.close(fd)
    os.unlink(probe)
    pytest.skip("no unwritable folder available")


# ------------------------------------------------------------------ pose: eval, render, split
@pytest.mark.parametrize(
    "case", ["no pose", "no shape", "has_smpl all 0", "has_smpl 0 in two rows"]
)
def test_eval_refuses_labels_without_smpl_ground_truth(tmp_path, ihmr_main, one_line_error, case):
    n = 12
    drop = {
        "no pose": dict(pose=None),
        "no shape": dict(shape=None),
        "has_smpl all 0": dict(has_smpl=np.zeros(n)),
        "has_smpl 0 in two rows": dict(has_smpl=np.where(np.isin(np.arange(n), [3, 7]), 0, 1)),
    }[case]
    labels = _labels(tmp_path, n, **drop)
    res = ihmr_main(
        "eval",
        "--labels",
        labels,
        "--predictions",
        _predictions(tmp_path, n),
        "--out",
        tmp_path / "e",
        "--renders",
        "0",
    )
    want = {
        "no pose": ["for 12 of 12 samples", "missing key(s) ['pose']"],
        "no shape": ["for 12 of 12 samples", "missing key(s) ['shape']"],
        "has_smpl all 0": ["for 12 of 12 samples", "has_smpl is 0 in rows [0, 1, 2"],
        "has_smpl 0 in two rows": ["for 2 of 12 samples", "has_smpl is 0 in rows [3, 7]"],
    }[case]
    one_line_error(res, "no SMPL ground truth", str(labels), *want)
    assert not (tmp_path / "e").exists()


def test_render_refuses_nan_pose_naming_the_rows(tmp_path, ihmr_main, one_line_error):
    pose = np.random.default_rng(0).normal(0, 0.2, (6, 72))
    pose[2, 5] = np.nan
    pose[4, 0] = np.inf
    res = ihmr_main("render", _predictions(tmp_path, 6, pose), "--out", tmp_path / "png")
    one_line_error(res, "pose", "2 sample(s), rows [2, 4]")
    assert not (tmp_path / "png").exists()


def test_eval_text_file_named_npz(tmp_path, ihmr_main, one_line_error):
    (tmp_path / "pred.npz").write_text("pose,betas\n0.1,0.2\n")
    res = ihmr_main(
        "eval",
        "--labels",
        _labels(tmp_path),
        "--predictions",
        tmp_path / "pred.npz",
        "--out",
        tmp_path / "e",
    )
    one_line_error(res, f"predictions file {str(tmp_path / 'pred.npz')!r} is not an .npz archive")
    assert not (tmp_path / "e").exists()


def test_split_regions_must_be_at_least_one(tmp_path, ihmr_main, one_line_error):
    res = ihmr_main(
        "split", _labels(tmp_path), "--out", tmp_path / "s" / "split.npz", "--regions", "0"
    )
    one_line_error(res, "--regions", "must be an integer >= 1, got 0")
    assert not (tmp_path / "s").exists()


def _no_work(*_, **__):
    raise AssertionError("the command started its work before checking --out")


def test_eval_out_under_a_file_is_checked_before_any_work(
    tmp_path, ihmr_main, one_line_error, monkeypatch
):
    import ihmr.pose.spin_data as spin_data

    labels, preds = _labels(tmp_path), _predictions(tmp_path)
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(spin_data, "read_spin_npz", _no_work)
    res = ihmr_main(
        "eval", "--labels", labels, "--predictions", preds, "--out", tmp_path / "file" / "e"
    )
    one_line_error(res, f"{str(tmp_path / 'file')!r} is a file, not a folder")


def test_fit_prior_out_under_a_file_is_checked_before_any_work(
    tmp_path, ihmr_main, one_line_error, monkeypatch
):
    import ihmr.priors

    np.save(tmp_path / "y.npy", np.arange(20.0))
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(ihmr.priors, "fit_gmm", _no_work)
    res = ihmr_main(
        "fit-prior", tmp_path / "y.npy", "--out", tmp_path / "file" / "prior.npz", "-k", "2"
    )
    one_line_error(res, f"{str(tmp_path / 'file')!r} is a file, not a folder")


def test_fit_prior_unwritable_out_names_the_folder(
    tmp_path, ihmr_main, one_line_error, unwritable_dir, monkeypatch
):
    import ihmr.priors

    np.save(tmp_path / "y.npy", np.arange(20.0))
    monkeypatch.setattr(ihmr.priors, "fit_gmm", _no_work)
    line = one_line_error(
        ihmr_main(
            "fit-prior", tmp_path / "y.npy", "--out", unwritable_dir / "prior.npz", "-k", "2"
        ),
        f"folder {str(unwritable_dir)!r}",
    )
    assert ".tmp" not in line and "write-probe" not in line


def test_split_unwritable_out_names_the_folder(
    tmp_path, ihmr_main, one_line_error, unwritable_dir, monkeypatch
):
    import ihmr.pose.spin_data as spin_data

    labels = _labels(tmp_path)
    monkeypatch.setattr(spin_data, "read_spin_npz", _no_work)
    line = one_line_error(
        ihmr_main("split", labels, "--out", unwritable_dir / "split.npz"),
        f"folder {str(unwritable_dir)!r}",
    )
    assert ".tmp" not in line and "write-probe" not in line


# ------------------------------------------------------------------ checkpoints
def _truncated(path: Path, obj) -> Path:
    torch.save(obj, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_eval_truncated_head_checkpoint(tmp_path, ihmr_main, one_line_error):
    from ihmr.models.hmr import HMRHead, head_checkpoint

    ck = _truncated(tmp_path / "head.pt", head_checkpoint(HMRHead(16)))
    res = ihmr_main(
        "eval",
        "--checkpoint",
        ck,
        "--labels",
        _labels(tmp_path),
        "--features",
        tmp_path / "feats",
        "--out",
        tmp_path / "e",
    )
    one_line_error(res, f"checkpoint {str(ck)!r} is truncated or not a checkpoint")
    assert not (tmp_path / "e").exists()


def test_age_eval_truncated_checkpoint_leaves_nothing(tmp_path, ihmr_main, one_line_error):
    ck = _truncated(tmp_path / "best.pt", {"kind": "age", "model": {"w": torch.zeros(4096)}})
    res = ihmr_main("age", "eval", ck, "--out", tmp_path / "eval" / "age", "--device", "cpu")
    one_line_error(res, f"checkpoint {str(ck)!r} is truncated or not a checkpoint")
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("kind", ["age", "depth"])
@pytest.mark.parametrize(
    "option",
    [("--labels", "x.npz"), ("--predictions", "p.npz"), ("--split", "s.npz"), ("--renders", "2")],
)
def test_eval_refuses_pose_options_for_age_and_depth(
    tmp_path, ihmr_main, one_line_error, kind, option
):
    torch.save({"kind": kind, "model": {}}, tmp_path / "best.pt")
    res = ihmr_main("eval", "--checkpoint", tmp_path / "best.pt", *option, "--out", tmp_path / "e")
    one_line_error(res, f"{option[0]} does not apply to the {kind} checkpoint")
    assert not (tmp_path / "e").exists()


# ------------------------------------------------------------------ demo data
def test_demo_data_negative_count_names_the_option(tmp_path, ihmr_main, one_line_error):
    res = ihmr_main("demo-data", "--out", tmp_path / "demo", "--n-train", "-5")
    one_line_error(res, "--n-train", "must be an integer >= 1, got -5")
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    "args, needles",
    [
        (["demo-data", "--seed", "-2"], ["seed", ">= 0, got -2"]),
        (["age", "demo-data", "--seed", "-1"], ["--seed", ">= 0, got -1"]),
        (["age", "train", "--set", "seed=-1"], ["seed must be an integer >= 0, got -1"]),
        (
            ["age", "train", "--set", "many=10", "--set", "few=20"],
            ["few (20) must not exceed many (10)"],
        ),
        (["depth", "demo-data", "--train-scenes", "0"], ["--train-scenes", ">= 1, got 0"]),
    ],
)
def test_bad_counts_and_seeds_name_the_setting(tmp_path, ihmr_main, one_line_error, args, needles):
    if args[0] == "age" and args[1] == "train":
        from ihmr.age.demo_data import make_demo

        make_demo(tmp_path / "data", total=200, size=16, cap=2)  # demo.csv: the default data.csv
        args = [
            *args,
            "--set",
            f"data.root={tmp_path / 'data'}",
            "--set",
            "device=cpu",
            "--out",
            tmp_path / "out",
        ]
    else:
        args = [*args, "--out", tmp_path / "out"]
    one_line_error(ihmr_main(*args), *needles)
    assert not (tmp_path / "out").exists()


def test_fit_prior_text_file_named_npz(tmp_path, ihmr_main, one_line_error):
    (tmp_path / "y.npz").write_text("1,2,3\n")
    one_line_error(
        ihmr_main("fit-prior", tmp_path / "y.npz", "--out", tmp_path / "p.npz"),
        f"label file {str(tmp_path / 'y.npz')!r} is not an .npz archive",
    )


# ------------------------------------------------------------------ the rule itself
def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    """A plain ValueError is a bug, not bad input: the entry point must not hide it."""
    import sys

    import ihmr.priors
    from ihmr.cli import main

    def bug(*_, **__):
        raise ValueError("operands could not be broadcast together")

    np.save(tmp_path / "y.npy", np.arange(20.0))
    monkeypatch.setattr(ihmr.priors, "fit_gmm", bug)
    monkeypatch.setattr(
        sys,
        "argv",
        ["ihmr", "fit-prior", str(tmp_path / "y.npy"), "--out", str(tmp_path / "p" / "prior.npz")],
    )
    with pytest.raises(ValueError, match="broadcast"):
        main()
    assert not (tmp_path / "p").exists()  # the folder made for the output is gone again


def test_any_os_file_error_is_one_line_with_the_path(
    tmp_path, ihmr_main, one_line_error, monkeypatch
):
    import ihmr.priors

    def not_a_dir(*_, **__):
        raise NotADirectoryError(20, "Not a directory", str(tmp_path / "a" / "b.csv"))

    monkeypatch.setattr(ihmr.priors, "read_labels", not_a_dir)
    res = ihmr_main("fit-prior", tmp_path / "y.npy", "--out", tmp_path / "prior.npz")
    one_line_error(res, f"{tmp_path / 'a' / 'b.csv'}: Not a directory")
