"""One config vocabulary for pose, age and depth: the shared words, the renamed-key errors, and
every shipped config loading and round-tripping with the new keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ihmr.age.config import AgeConfig
from ihmr.config import RENAMED_KEYS, load_config, read_yaml, save_config, to_dict
from ihmr.depth.train import DepthTrainConfig
from ihmr.errors import ConfigError
from ihmr.pose.config import PoseTrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CLASSES = {"ihmr": PoseTrainConfig, "age": AgeConfig, "depth": DepthTrainConfig}


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _has_path(cls, path: str) -> bool:
    section, _, key = path.partition(".")
    sub = {f.name: f for f in dataclasses.fields(cls)}.get(section)
    if sub is None:
        return False
    if not key:
        return True
    inner = to_dict(cls())[section]
    return isinstance(inner, dict) and key in inner


def test_the_three_benchmarks_spell_loss_and_optim_the_same():
    loss = {name: _fields(type(cls().loss)) for name, cls in CLASSES.items()}
    optim = {name: _fields(type(cls().optim)) for name, cls in CLASSES.items()}
    for name in CLASSES:  # the library's own words (BMCLoss(init_noise_sigma, learn_noise))
        assert {"kind", "init_noise_sigma", "learn_noise"} <= loss[name], name
        assert {"lr", "epochs", "batch_size", "sigma_lr"} <= optim[name], name
        assert not {"pose", "sigma", "learn_sigma", "reweight", "sigma_lr"} & loss[name], name
        assert "resume" not in _fields(CLASSES[name])
    lds = {"lds", "lds_kernel", "lds_ks", "lds_sigma", "gmm_components"}
    assert lds <= loss["age"] and lds <= loss["depth"]
    assert "prior" in loss["ihmr"]  # pose reads a prior file; age and depth fit their GMM
    assert "weight_decay" in optim["age"] and "weight_decay" in optim["depth"]
    assert _fields(type(AgeConfig().rrt)) == {"pretrained", "features"}  # RRT's own inputs only
    kinds = {name: set(_kinds(cls)) for name, cls in CLASSES.items()}
    assert {"mse", "gai", "bmc"} <= kinds["ihmr"] and "bmc_mmhuman3d" in kinds["ihmr"]
    assert {"mse", "gai", "bmc", "bni", "inverse", "sqrt_inv"} <= kinds["age"]
    assert {"mse", "gai", "bmc", "bni", "inverse", "sqrt_inv"} == kinds["depth"]


def _kinds(cls) -> tuple:
    import typing

    hint = typing.get_type_hints(type(cls().loss))["kind"]
    return typing.get_args(hint)


# every renamed key, the class that had it, and the key of the new vocabulary its error names
OLD_KEYS = [
    (
        old,
        AgeConfig
        if old.startswith(("rrt.", "vanilla."))
        else PoseTrainConfig
        if old == "loss.pose"
        else DepthTrainConfig,
    )
    for old in RENAMED_KEYS
]


@pytest.mark.parametrize("old, cls", OLD_KEYS, ids=[o for o, _ in OLD_KEYS])
def test_old_key_names_its_new_key(old, cls, tmp_path):
    new = RENAMED_KEYS[old]
    assert not _has_path(cls, old)  # the table never hides a key that is still valid
    if old != "resume":
        assert _has_path(cls, new.split(" ")[0]), new  # and points at a real key
    value = "1" if old != "vanilla.milestones" else "[1]"
    with pytest.raises(ConfigError) as exc:
        load_config(cls, None, [f"{old}={value}"])
    msg = str(exc.value)
    assert repr(old) in msg and new in msg and "unknown" not in msg
    section, _, key = old.rpartition(".")
    text = f"{section}:\n  {key}: {value}\n" if section else f"{key}: {value}\n"
    (tmp_path / "old.yaml").write_text(text)
    with pytest.raises(ConfigError, match="renamed|moved to|removed"):
        load_config(cls, tmp_path / "old.yaml")


@pytest.mark.parametrize(
    "cls, text, expect",
    [
        (PoseTrainConfig, "loss:\n  pose: bmc\n", "'loss.pose' was renamed loss.kind"),
        (
            AgeConfig,
            "stage: rrt\nrrt:\n  loss: bmc\n  pretrained: x.pt\n",
            "'rrt.loss' moved to loss.kind",
        ),
        (AgeConfig, "vanilla:\n  loss: l1\n  lr: 1.0e-3\n", "'vanilla.loss' moved to loss.kind"),
        (
            DepthTrainConfig,
            "loss:\n  kind: bni\n  sigma: 1.0\n",
            "'loss.sigma' was renamed loss.init_noise_sigma",
        ),
        (
            DepthTrainConfig,
            "loss:\n  learn_sigma: true\n",
            "'loss.learn_sigma' was renamed loss.learn_noise",
        ),
        (
            DepthTrainConfig,
            "loss:\n  kind: reweight\n  reweight: sqrt_inv\n",
            "loss.kind: 'reweight' was renamed inverse or sqrt_inv",
        ),
        (
            DepthTrainConfig,
            "resume: true\n",
            "'resume' was removed: continue a run with the train command's --resume RUN_DIR option",
        ),
    ],
)
def test_old_config_files_are_refused_with_the_new_words(cls, text, expect, tmp_path):
    (tmp_path / "old.yaml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(cls, tmp_path / "old.yaml")
    assert expect in str(exc.value)


def test_a_typo_still_gets_the_closest_key():
    with pytest.raises(ConfigError, match="unknown config key 'loss.knd'; did you mean 'kind'"):
        load_config(DepthTrainConfig, None, ["loss.knd=bni"])


SHIPPED = sorted(p for p in CONFIGS.glob("*/*.yaml") if p.parent.name in CLASSES)


@pytest.mark.parametrize("path", SHIPPED, ids=[f"{p.parent.name}/{p.name}" for p in SHIPPED])
def test_shipped_configs_use_the_vocabulary_and_round_trip(path, tmp_path):
    cls = CLASSES[path.parent.name]
    raw = read_yaml(path)
    assert "kind" in raw["loss"] and "optim" in raw, path  # every file names its loss and optim
    cfg = load_config(cls, path)
    saved = save_config(cfg, tmp_path / "config.yaml")
    again = read_yaml(saved)
    assert again["loss"]["kind"] == raw["loss"]["kind"]
    assert load_config(cls, saved) == cfg
    text = saved.read_text()
    for old in ("learn_sigma", "\nvanilla:", "  reweight:", "resume:"):
        assert old not in text


def test_age_loss_and_optim_reach_the_trainer_as_written(tmp_path):
    """The age stage-2 fields moved out of rrt keep their meaning: loss.* builds the criterion,
    optim.* the optimiser groups (sigma in its own group at optim.sigma_lr)."""
    import numpy as np

    from ihmr.age.criteria import build_criterion

    cfg = load_config(
        AgeConfig,
        CONFIGS / "age" / "gai.yaml",
        ["loss.init_noise_sigma=3.5", "loss.gmm_components=2"],
    )
    crit = build_criterion(cfg.loss, np.random.default_rng(0).uniform(0, 90, 300), (0, 120))
    assert crit.kind == "gai" and crit.sigma == pytest.approx(3.5)
    assert crit.inner.gmm_log_weights.shape == (2,)  # loss.gmm_components components
    assert (cfg.optim.lr, cfg.optim.epochs, cfg.optim.sigma_lr) == (1e-4, 10, 1e-2)


def test_age_stage1_refuses_a_stage2_loss(tmp_path):
    from ihmr.age.train import train

    cfg = load_config(
        AgeConfig,
        CONFIGS / "age" / "demo_vanilla.yaml",
        ["loss.kind=bmc", f"out={tmp_path / 'run'}"],
    )
    with pytest.raises(ConfigError, match="stage vanilla .* l1 or mse, got 'bmc'"):
        train(cfg, log=lambda m: None)
    assert not (tmp_path / "run").exists()


def test_depth_checkpoints_saved_in_the_old_words_still_load():
    from ihmr.config import from_dict
    from ihmr.depth.evaluate import _current_words

    old = to_dict(DepthTrainConfig())
    loss = old["loss"]
    loss.pop("init_noise_sigma"), loss.pop("learn_noise"), old["optim"].pop("sigma_lr")
    loss.update(kind="reweight", reweight="sqrt_inv", sigma=0.7, learn_sigma=True, sigma_lr=0.05)
    old["resume"] = True
    with pytest.raises(ConfigError):
        from_dict(DepthTrainConfig, old)
    cfg = from_dict(DepthTrainConfig, _current_words(old))
    assert (cfg.loss.kind, cfg.loss.init_noise_sigma, cfg.loss.learn_noise) == (
        "sqrt_inv",
        0.7,
        True,
    )
    assert cfg.optim.sigma_lr == 0.05 and old["loss"]["kind"] == "reweight"  # input untouched
