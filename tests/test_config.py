from dataclasses import dataclass, field
from typing import Literal

import pytest

from ihmr.config import load_config, parse_overrides, read_yaml, save_config
from ihmr.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-4
    kind: Literal["adam", "sgd"] = "adam"


@dataclass
class Cfg:
    optim: Optim = field(default_factory=Optim)
    epochs: int = 20
    name: str = "x"
    sizes: tuple[int, ...] = (1, 2)


def test_precedence_defaults_yaml_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 5\noptim:\n  lr: 1e-3\n")
    cfg = load_config(Cfg, p, ["optim.kind=sgd", "epochs=7"])
    assert cfg.epochs == 7 and cfg.optim.lr == 1e-3 and cfg.optim.kind == "sgd"
    assert cfg.name == "x"


def test_unknown_key_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epoch: 5\n")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        load_config(Cfg, p)
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(Cfg, None, ["optim.lrr=1"])


def test_type_and_literal_errors():
    with pytest.raises(ConfigError, match="epochs must be an integer"):
        load_config(Cfg, None, ["epochs=abc"])
    with pytest.raises(ConfigError, match="one of"):
        load_config(Cfg, None, ["optim.kind=adamw"])
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["epochs"])


def test_save_round_trip(tmp_path):
    cfg = load_config(Cfg, None, ["sizes=[3, 4]"])
    assert cfg.sizes == (3, 4)
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(Cfg, out) == cfg
    assert read_yaml(out)["optim"]["lr"] == pytest.approx(1e-4)


@dataclass
class Switches:
    mode: Literal["off", "default", "on"] = "default"
    amp: Literal["auto", "no", "bf16"] = "auto"
    kind: Literal["adam", "sgd"] = "adam"


def test_yaml_booleans_become_literal_words(tmp_path):
    # YAML 1.1 reads off/on/no as booleans: a string choice gets its word back
    cfg = load_config(Switches, None, ["mode=off", "amp=no"])
    assert cfg.mode == "off" and cfg.amp == "no"
    p = tmp_path / "c.yaml"
    p.write_text("mode: on\n")
    assert load_config(Switches, p).mode == "on"
    with pytest.raises(ConfigError, match="one of"):  # no word for a boolean among the choices
        load_config(Switches, None, ["kind=off"])
