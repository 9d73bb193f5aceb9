"""The one path rule of ihmr.config, and every benchmark applying it.

Files of a data set are read from ``data.root``; everything else (``data.root`` itself, ``out``,
checkpoints) from the working directory; the config file's folder plays no part.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ihmr.config import load_config, resolve_path
from ihmr.errors import ConfigError

CONFIGS = Path(__file__).parents[1] / "configs"


def test_resolve_path_rule(tmp_path, monkeypatch):
    assert resolve_path(None, "data/x") is None and resolve_path("", "data/x") is None
    assert resolve_path("a/b.npz", "data/x") == Path("data/x/a/b.npz")
    assert resolve_path("a/b.npz") == Path("a/b.npz")  # no root: the working directory
    assert resolve_path(tmp_path / "b.npz", "data/x") == tmp_path / "b.npz"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_path("~/b.npz", "data/x") == tmp_path / "b.npz"
    assert resolve_path("b.npz", "~/ds") == tmp_path / "ds" / "b.npz"


def test_the_config_files_folder_plays_no_part(tmp_path, monkeypatch):
    from ihmr.pose.config import PoseTrainConfig

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "c.yaml").write_text("data:\n  root: ds\nloss:\n  prior: p.npz\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(PoseTrainConfig, "configs/c.yaml")
    path = resolve_path(cfg.loss.prior, cfg.data.root)
    assert path == Path("ds/p.npz") and path.resolve() == tmp_path / "ds" / "p.npz"


def _prior(path: Path) -> None:
    from ihmr.priors import GMMPrior

    rng = np.random.default_rng(0)
    a = rng.normal(size=(1, 216, 216)) * 0.02
    path.parent.mkdir(parents=True, exist_ok=True)
    GMMPrior(np.ones(1), np.zeros((1, 216)), a @ a.transpose(0, 2, 1) + 0.01 * np.eye(216)).save(
        path
    )


def test_pose_reads_the_prior_from_data_root_only(tmp_path, monkeypatch):
    from ihmr.pose.config import PoseTrainConfig
    from ihmr.pose.train import build_loss

    _prior(tmp_path / "ds" / "prior.npz")
    _prior(tmp_path / "cwd" / "prior.npz")
    monkeypatch.chdir(tmp_path / "cwd")
    cfg = load_config(
        PoseTrainConfig,
        None,
        [f"data.root={tmp_path / 'ds'}", "loss.kind=gai", "loss.prior=prior.npz"],
    )
    assert build_loss(cfg, all_valid=True) is not None
    (tmp_path / "ds" / "prior.npz").unlink()  # only the working directory's copy is left
    with pytest.raises(ConfigError, match="read from data.root"):
        build_loss(cfg, all_valid=True)


def test_shipped_pose_demo_config_finds_what_ihmr_demo_writes():
    from ihmr.pose.config import PoseTrainConfig
    from ihmr.pose.demo import DEMO_DATA, PRIOR_FILE

    cfg = load_config(PoseTrainConfig, CONFIGS / "ihmr" / "demo_gai.yaml")
    assert resolve_path(cfg.loss.prior, cfg.data.root) == Path(DEMO_DATA) / PRIOR_FILE
    labels = resolve_path(cfg.eval.labels, cfg.data.root)
    assert labels == Path(DEMO_DATA) / "dataset_extras" / "demo_test.npz"


def test_age_reads_csv_and_images_from_data_root(tmp_path, monkeypatch):
    from ihmr.age.config import AgeConfig
    from ihmr.age.data import dataset_paths

    assert dataset_paths("demo.csv", "data/d") == (Path("data/d/demo.csv"), Path("data/d"))
    assert dataset_paths(tmp_path / "x.csv", "data/d")[0] == tmp_path / "x.csv"
    with pytest.raises(ConfigError, match="data.root is not set"):
        dataset_paths("demo.csv", None)
    # the shipped configs and the default name the same files as before the rule
    for name, want in [
        ("vanilla.yaml", "data/imdb_wiki_dir/imdb_wiki.csv"),
        ("bmc.yaml", "data/imdb_wiki_dir/imdb_wiki.csv"),
        ("demo_vanilla.yaml", "data/age-demo/demo.csv"),
    ]:
        cfg = load_config(AgeConfig, CONFIGS / "age" / name)
        assert dataset_paths(cfg.data.csv, cfg.data.root)[0] == Path(want), name
    cfg = AgeConfig()  # `ihmr age demo-data --out data/age-demo` writes data/age-demo/demo.csv
    assert dataset_paths(cfg.data.csv, cfg.data.root) == (
        Path("data/age-demo/demo.csv"),
        Path("data/age-demo"),
    )


def test_depth_reads_layout_and_images_from_data_root(tmp_path, monkeypatch):
    from ihmr.depth.data import Layout, read_split_csv
    from ihmr.depth.train import DepthTrainConfig

    root = tmp_path / "nyu"
    (root / "data" / "s").mkdir(parents=True)
    for f in ("s/rgb_0.jpg", "s/d_0.png"):
        (root / "data" / f).write_bytes(b"x")
    (root / "data" / "nyu2_train.csv").write_text("data/s/rgb_0.jpg,data/s/d_0.png\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = load_config(DepthTrainConfig, None, ["data.root=../nyu"])
    layout = Layout(cfg.data.root)
    assert layout.path(layout.train_csv) == Path("../nyu/data/nyu2_train.csv")
    split = read_split_csv(layout.path(layout.train_csv), layout.root, "train")
    assert [p.resolve() for p in split.rgb] == [root / "data" / "s" / "rgb_0.jpg"]
    assert [p.resolve() for p in split.depth] == [root / "data" / "s" / "d_0.png"]
