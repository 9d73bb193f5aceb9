"""One config system for the whole project: dataclasses, YAML, overrides.

Precedence is resolved in one place, :func:`load_config`: dataclass defaults < YAML file <
command-line overrides (``section.key=value``, values parsed as YAML scalars). Unknown keys are
rejected with the closest valid key suggested; a key of an older vocabulary (:data:`RENAMED_KEYS`,
:data:`RENAMED_VALUES`) is rejected with the key or value that replaced it. YAML is only ever read
with ``yaml.safe_load``.
The resolved config is saved beside every run with :func:`save_config`.

Paths follow one rule, applied by every benchmark through :func:`resolve_path`:

- a file *of the data set* is relative to ``data.root`` (pose: ``data.train[*].labels`` /
  ``features`` / ``fits``, ``eval.labels`` / ``features`` / ``split`` and the GAI prior
  ``loss.prior``; age: ``data.csv`` and the images it lists; depth: the NYUD2-DIR files);
- every other path (``data.root`` itself, ``out``, ``smpl_dir``, and the checkpoints and feature
  caches that runs write, e.g. age's stage-1 checkpoint and cached features) is relative to the
  working directory.

Absolute paths (and ``~``) are used as they are; the config file's own folder plays no part, so
``--set data.root=/elsewhere`` moves a whole data set.

Example::

    @dataclass
    class OptimConfig:
        lr: float = 1e-4
        \"\"\"Adam learning rate.\"\"\"

    @dataclass
    class TrainConfig:
        optim: OptimConfig = field(default_factory=OptimConfig)
        epochs: int = 20

    cfg = load_config(TrainConfig, "configs/x.yaml", ["optim.lr=1e-3"])
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

from .errors import ConfigError
from .io import write_text

T = TypeVar("T")


#: Keys of the older, per-benchmark vocabularies and the key that replaced each (one table for the
#: pose, age and depth configs). Looked up only for a key the config class does not have, so a
#: valid key is never caught. A value that does not start with a key says what to do instead.
RENAMED_KEYS: dict[str, str] = {
    # pose
    "loss.pose": "loss.kind",
    # age: stage 1's section and stage 2's loss and optimisation fields
    "vanilla.loss": "loss.kind",
    "vanilla.lr": "optim.lr",
    "vanilla.epochs": "optim.epochs",
    "vanilla.milestones": "optim.milestones",
    "vanilla.gamma": "optim.gamma",
    "vanilla.batch_size": "optim.batch_size",
    "vanilla.weight_decay": "optim.weight_decay",
    "rrt.loss": "loss.kind",
    "rrt.init_noise_sigma": "loss.init_noise_sigma",
    "rrt.learn_noise": "loss.learn_noise",
    "rrt.gmm_components": "loss.gmm_components",
    "rrt.lds": "loss.lds",
    "rrt.lds_kernel": "loss.lds_kernel",
    "rrt.lds_ks": "loss.lds_ks",
    "rrt.lds_sigma": "loss.lds_sigma",
    "rrt.reweight_clip": "loss.reweight_clip",
    "rrt.lr": "optim.lr",
    "rrt.epochs": "optim.epochs",
    "rrt.batch_size": "optim.batch_size",
    "rrt.sigma_lr": "optim.sigma_lr",
    # depth
    "loss.sigma": "loss.init_noise_sigma",
    "loss.learn_sigma": "loss.learn_noise",
    "loss.sigma_lr": "optim.sigma_lr",
    "loss.reweight": "loss.kind (inverse or sqrt_inv, which replace kind: reweight)",
    "resume": "continue a run with the train command's --resume RUN_DIR option",
}

#: Choices of the older vocabularies, per key: ``{key: {old value: what to write instead}}``.
RENAMED_VALUES: dict[str, dict[str, str]] = {
    "loss.kind": {
        "reweight": "inverse or sqrt_inv (the former loss.reweight value)",
        "vanilla": "mse",
    },
}


def _renamed(path: str, value: Any) -> str | None:
    """The error message for ``path`` if it (or, for a removed section, one of its keys) is a key
    of an older vocabulary, else None."""
    if path in RENAMED_KEYS:
        new = RENAMED_KEYS[path]
        key = new.partition(" ")[0]
        if "." not in key:
            return f"config key {path!r} was removed: {new}"
        verb = "was renamed" if path.rpartition(".")[0] == key.rpartition(".")[0] else "moved to"
        return f"config key {path!r} {verb} {new}"
    if isinstance(value, Mapping):
        for key, sub in value.items():
            msg = _renamed(f"{path}.{key}", sub)
            if msg:
                return msg
    return None


def _suggest(key: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise :class:`ConfigError`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: cannot interpret {value!r}")
    if origin is typing.Literal:
        if isinstance(value, bool) and all(isinstance(a, str) for a in args):
            # YAML 1.1 reads off/on/no/yes as booleans: map them back to a string choice
            words = ("on", "yes", "true") if value else ("off", "no", "false")
            value = next((a for a in args if a.lower() in words), value)
        if value not in args:
            new = RENAMED_VALUES.get(where, {}).get(value) if isinstance(value, str) else None
            if new is not None:
                raise ConfigError(f"{where}: {value!r} was renamed {new}")
            raise ConfigError(
                f"{where} must be one of {list(args)}, got {value!r}"
                f"{_suggest(str(value), map(str, args))}"
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}")
            return tuple(
                _coerce(v, a, f"{where}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, recursively; unknown keys are an error, and so is
    a negative ``seed`` (random generators take seeds >= 0)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            renamed = _renamed(path, value)
            if renamed:
                raise ConfigError(renamed)
            raise ConfigError(f"unknown config key {path!r}{_suggest(str(key), fields)}")
        kwargs[key] = _coerce(value, hints[key], path)
        if key == "seed" and isinstance(kwargs[key], int) and kwargs[key] < 0:
            raise ConfigError(f"{path} must be an integer >= 0, got {kwargs[key]}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid config {where or cls.__name__}: {exc}") from exc


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists, for YAML/JSON)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1, 2]"]`` into a nested dict; values are YAML scalars or lists."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: cannot parse value: {exc}") from exc
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override")
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return data


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> T:
    """Resolve a config: defaults < YAML file at ``path`` < ``extra`` (CLI options) < overrides."""
    data = to_dict(cls())
    if path is not None:
        data = _merge(data, read_yaml(path))
    if extra:
        data = _merge(data, extra)
    data = _merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def resolve_path(path: str | os.PathLike | None, root: str | os.PathLike = ".") -> Path | None:
    """The config path rule (module docstring): a file of the data set at ``path``, relative to
    ``root`` (the config's ``data.root``, itself relative to the working directory).

    ``None`` or ``""`` (an unset optional path) gives ``None``; ``~`` is expanded; an absolute
    ``path`` is returned as it is, a relative one is joined to ``root``.
    """
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(root).expanduser() / p


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (atomically), for the run folder."""
    return write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
