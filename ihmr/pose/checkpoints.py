"""Checkpoints for images -> SMPL: SPIN's, our trained heads (+ their backbone), combined exports.

Three kinds load into one :class:`~ihmr.models.hmr.HMR` (ResNet-50 + regressor head):

- ``"spin"``: SPIN's ``model_checkpoint.pt`` (``{"model": flat state dict}``, torchvision
  backbone names beside ``fc1``/``fc2``/``decpose``/``decshape``/``deccam``), or a bare flat state
  dict in that layout;
- ``"ihmr-pose-head"``: a head from ``ihmr train`` (``head.pt``, or a run's ``last.pt``). It was
  trained on features of one backbone checkpoint, whose file fingerprint it records
  (``features_fingerprint``); the backbone is taken from ``backbone`` (a SPIN checkpoint or an
  export) and must have that fingerprint. Without ``backbone`` the feature stores named in the
  head's training config are asked where their checkpoint is;
- ``"ihmr-hmr-model"``: one file from :func:`export_model` holding backbone and head in SPIN's
  layout (so SPIN-style loaders read it too) plus where both came from.

A checkpoint that does not fit fails with a message naming the missing and unexpected keys and
the wrong shapes (:func:`ihmr.models.hmr.load_checked`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import DataError
from ..io import check_writable_file, torch_save
from ..models.hmr import (
    HEAD_KIND,
    HMR,
    NPOSE,
    HMRHead,
    checkpoint_kind,
    load_checked,
    read_checkpoint,
    split_spin_state_dict,
)
from .features import file_fingerprint

EXPORT_KIND = "ihmr-hmr-model"


@dataclass
class LoadedModel:
    """A ready :class:`~ihmr.models.hmr.HMR` (eval mode, CPU) and where its weights came from."""

    model: Any
    kind: str
    info: dict[str, Any] = field(default_factory=dict)


def _fingerprint(path: str | os.PathLike) -> str:
    return file_fingerprint(path)


def _head_state(ckpt: Mapping[str, Any]) -> tuple[dict, str | None] | None:
    """``(head state, features fingerprint)`` of an ``ihmr train`` head or run checkpoint."""
    if ckpt.get("kind") == HEAD_KIND:
        return dict(ckpt["head"]), ckpt.get("features_fingerprint")
    state = ckpt.get("state")
    if isinstance(state, Mapping) and isinstance(state.get("head"), Mapping):
        return dict(state["head"]), (ckpt.get("extra") or {}).get("features_fingerprint")
    return None


def _load_both(model: Any, state: Mapping[str, Any], where: str) -> None:
    """Load a SPIN-layout state dict into backbone and head; one error naming what does not fit
    in either part (missing / unexpected keys, wrong shapes)."""
    bb, hd = split_spin_state_dict(state)
    problems = []
    for module, part, what in (
        (model.backbone, bb, "backbone"),
        (model.head, hd, "regressor head"),
    ):
        try:
            load_checked(module, part, what)
        except DataError as exc:
            problems.append(str(exc).split(". Is it")[0])
    if problems:
        raise DataError(
            f"{where}: " + "; ".join(problems) + ". Is it a SPIN model_checkpoint.pt "
            "(ResNet-50 + HMR head, SPIN's key names) or an ihmr export?"
        )


def backbone_fingerprint(path: str | os.PathLike, ckpt: Mapping[str, Any] | None = None) -> str:
    """The fingerprint features of this checkpoint's backbone carry: an export records its
    source SPIN checkpoint's; any other checkpoint is identified by its own bytes."""
    if ckpt is not None and ckpt.get("kind") == EXPORT_KIND and ckpt.get("backbone_fingerprint"):
        return str(ckpt["backbone_fingerprint"])
    return _fingerprint(path)


def find_backbone(head_ckpt: Mapping[str, Any], fingerprint: str | None) -> Path | None:
    """The backbone checkpoint of a trained head, from the feature stores of its training config
    (``config.data.train[*].features`` -> ``index.json`` -> ``source.checkpoint``), if that file
    is still there and has the recorded fingerprint."""
    cfg = head_ckpt.get("config") or {}
    data = cfg.get("data") or {}
    root = Path(data.get("root") or ".")
    for ds in data.get("train") or []:
        feats = ds.get("features") if isinstance(ds, Mapping) else None
        if not feats:
            continue
        index = (Path(feats) if Path(feats).is_absolute() else root / feats) / "index.json"
        try:
            src = json.loads(index.read_text())["source"]["checkpoint"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        cand = Path(src)
        if cand.is_file() and (fingerprint is None or _fingerprint(cand) == fingerprint):
            return cand
    return None


def load_model(
    checkpoint: str | os.PathLike,
    backbone: str | os.PathLike | None = None,
    *,
    mean_params: Mapping[str, Any] | None = None,
    allow_mismatch: bool = False,
) -> LoadedModel:
    """Load any supported checkpoint (see the module docstring) into an :class:`HMR`.

    Args:
        checkpoint: SPIN ``model_checkpoint.pt``, an ``ihmr train`` head (``head.pt``/``last.pt``)
            or an export.
        backbone: for a head: the checkpoint its training features were extracted with.
        mean_params: head mean parameters when the checkpoint lacks the ``init_*`` buffers.
        allow_mismatch: accept a backbone whose fingerprint differs from the head's record
            (predictions are then not what the head was trained for; recorded in ``info``).
    """
    ckpt = read_checkpoint(checkpoint)
    info: dict[str, Any] = {"checkpoint": str(checkpoint), "fingerprint": _fingerprint(checkpoint)}
    head = _head_state(ckpt)
    if head is None:
        kind = EXPORT_KIND if ckpt.get("kind") == EXPORT_KIND else "spin"
        if checkpoint_kind(ckpt) not in ("spin", "state_dict"):
            raise DataError(f"{str(checkpoint)!r} is not a SPIN, ihmr head or export checkpoint")
        model = HMR(mean_params)
        _load_both(model, ckpt["model"] if "model" in ckpt else ckpt, str(checkpoint))
        info["backbone_fingerprint"] = (
            ckpt.get("backbone_fingerprint") or info["fingerprint"]
            if kind == EXPORT_KIND
            else info["fingerprint"]
        )
        if kind == EXPORT_KIND:
            info["export"] = {k: ckpt.get(k) for k in ("head_source", "backbone_source")}
        return LoadedModel(model.eval(), kind, info)

    head_state, want = head
    if "fc1.weight" not in head_state:
        raise DataError(f"{str(checkpoint)!r} holds no regressor head (no 'fc1.weight')")
    if backbone is None:
        backbone = find_backbone(ckpt, want)
        if backbone is None:
            raise DataError(
                f"{str(checkpoint)!r} is a head trained on cached features (backbone fingerprint "
                f"{want}); give the SPIN checkpoint those features were extracted with as "
                "--backbone (its location was not found through the training config)"
            )
        info["backbone_found_via"] = "training config"
    bb_ckpt = read_checkpoint(backbone)
    if _head_state(bb_ckpt) is not None:
        raise DataError(
            f"--backbone {str(backbone)!r} is another head checkpoint; give the SPIN "
            "model_checkpoint.pt (or an export) the features came from"
        )
    have = backbone_fingerprint(backbone, bb_ckpt)
    info.update(backbone=str(backbone), backbone_fingerprint=have, features_fingerprint=want)
    if want and have != want:
        if not allow_mismatch:
            raise DataError(
                f"the head {str(checkpoint)!r} was trained on features of backbone fingerprint "
                f"{want}, but --backbone {str(backbone)!r} has fingerprint {have}; give the "
                "matching checkpoint (or --allow-mismatch to run anyway)"
            )
        info["fingerprint_mismatch"] = True
    model = HMR(mean_params)

    bb_state, _ = split_spin_state_dict(bb_ckpt["model"] if "model" in bb_ckpt else bb_ckpt)
    load_checked(model.backbone, bb_state, "backbone")
    feature_dim = head_state["fc1.weight"].shape[1] - NPOSE - 13
    if feature_dim != model.backbone.feature_dim:
        raise DataError(
            f"the head takes {feature_dim}-d features, the ResNet-50 backbone gives "
            f"{model.backbone.feature_dim}"
        )
    model.head = HMRHead(feature_dim, mean_params)
    load_checked(model.head, head_state, "regressor head")
    return LoadedModel(model.eval(), "ihmr-pose-head", info)


def export_model(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    backbone: str | os.PathLike | None = None,
    *,
    allow_mismatch: bool = False,
) -> Path:
    """Write backbone + head of any supported checkpoint as one file (atomically).

    The file is ``{"kind": "ihmr-hmr-model", "model": SPIN-layout state dict, ...}``: SPIN-style
    loaders read its ``model`` entry; :func:`load_model` also reads where it came from
    (``head_source``, ``backbone_source``) and the backbone fingerprint that a head's
    ``features_fingerprint`` is checked against.
    """
    check_writable_file(out, "export file (--out)")

    loaded = load_model(checkpoint, backbone, allow_mismatch=allow_mismatch)
    info = loaded.info
    state = {k: v.detach().cpu().clone() for k, v in loaded.model.spin_state_dict().items()}
    obj = {
        "kind": EXPORT_KIND,
        "format": 1,
        "model": state,
        "backbone_fingerprint": info["backbone_fingerprint"],
        "head_source": {
            "path": info["checkpoint"],
            "fingerprint": info["fingerprint"],
            "kind": loaded.kind,
        },
        "backbone_source": {
            "path": info.get("backbone", info["checkpoint"]),
            "fingerprint": info["backbone_fingerprint"],
        },
    }
    return torch_save(out, obj)
