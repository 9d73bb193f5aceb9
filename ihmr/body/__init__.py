"""Body models: real SMPL from the user's files, or the bundled open body.

    from ihmr.body import load_body
    body = load_body("neutral")            # SMPL if configured, else the open body (said once)
    out = body(betas, pose)                # betas (B, 10); pose (B, 24, 3, 3) or (B, 72)
    out.vertices, out.joints, out.joints_h36m, out.joints49   # metres
    body.joints_only(betas, pose)          # same joints, no vertices (training)

Ground truth of 3DPW uses the gendered bodies; predictions use the neutral one for joints and,
in the IHMR release's MPVPE (``ihmr eval``'s default), the ground-truth gender's body for the
mesh: :func:`forward_gendered` picks the body per sample. Without SMPL files the one open body
serves every gender (:func:`load_bodies`), so gendered and neutral variants coincide there.
See :mod:`ihmr.body.files` for where files are looked up (``body.smpl_dir`` /
``$IHMR_SMPL_DIR``) and how pickles are read safely.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import DataError, ShapeError
from . import files
from .constants import GENDERS
from .files import BodyConfig, inventory, resolve_smpl_dir
from .model import BodyModel, BodyOutput, _cat

__all__ = [
    "BodyConfig",
    "BodyModel",
    "BodyOutput",
    "OpenBodyNotice",
    "forward_gendered",
    "inventory",
    "load_bodies",
    "load_body",
    "normalise_gender",
]


class OpenBodyNotice(UserWarning):
    """Issued once per process when the open body stands in for SMPL."""


_notice_shown = False
_cache: dict[tuple[str, str], tuple[dict, dict]] = {}

_GENDER_ALIASES = {
    "n": "neutral",
    "neutral": "neutral",
    "m": "male",
    "male": "male",
    "f": "female",
    "female": "female",
    "0": "male",
    "1": "female",
    "-1": "neutral",
}


def normalise_gender(g: Any) -> str:
    """'m'/'male'/0 -> 'male', 'f'/'female'/1 -> 'female' (SPIN's 3DPW coding), 'n'/-1 ->
    'neutral'."""
    if isinstance(g, bytes):
        g = g.decode()
    key = str(int(g)) if not isinstance(g, str) and float(g).is_integer() else str(g)
    try:
        return _GENDER_ALIASES[key.strip().lower()]
    except KeyError:
        raise DataError(
            f"gender must be one of {list(GENDERS)} (or m/f/n, 0 = male, 1 = female), got {g!r}"
        ) from None


def _say_open_body_once(gender: str) -> None:
    global _notice_shown
    if _notice_shown:
        return
    _notice_shown = True
    extra = f" (its one body also stands in for the {gender} SMPL)" if gender != "neutral" else ""
    warnings.warn(
        "no SMPL files configured (body.smpl_dir / IHMR_SMPL_DIR): using the bundled open body"
        f"{extra}. Numbers are not comparable with published SMPL results.",
        OpenBodyNotice,
        stacklevel=3,
    )


def _read(gender: str, folder) -> tuple[dict, dict, str]:
    if folder is None:
        body_npz, mean_npz = files.open_body_paths()
        if not body_npz.is_file() or not mean_npz.is_file():
            raise files.AssetNotFoundError(
                f"the bundled open body is missing ({body_npz}); reinstall ihmr, or configure real "
                f"SMPL files with {files.ENV_VAR} (register at {files.SMPL_URL})"
            )
        key = (str(body_npz), "open")
        if key not in _cache:
            raw = files.read_body_file(body_npz)
            _cache[key] = (
                files.validate_body(raw, str(body_npz)),
                files.read_mean_params(mean_npz),
            )
        return (*_cache[key], "open_body")
    if not folder.is_dir():
        raise files.AssetNotFoundError(
            f"SMPL folder {str(folder)!r} does not exist. Expected layout: {files.LAYOUT}. "
            f"Register at {files.SMPL_URL} to download SMPL."
        )
    path = files.smpl_model_path(folder, gender)
    key = (str(path), gender)
    if key not in _cache:
        raw = files.read_body_file(path)
        for name in ("J_regressor_h36m", "J_regressor_extra"):
            raw[name] = np.load(files.companion_path(folder, name + ".npy"), allow_pickle=False)
        mean = files.read_mean_params(files.companion_path(folder, "smpl_mean_params.npz"))
        _cache[key] = (files.validate_body(raw, str(path)), mean)
    return (*_cache[key], f"SMPL_{gender.upper()}")


def load_body(
    gender: str = "neutral",
    model_dir: str | os.PathLike | None = None,
    *,
    chunk_size: int = 1024,
    dtype: Any = None,
) -> BodyModel:
    """The ``gender`` body model: SMPL from ``model_dir`` / ``$IHMR_SMPL_DIR``, else the open body.

    Raises :class:`~ihmr.errors.AssetNotFoundError` naming the missing file, the expected layout
    and https://smpl.is.tue.mpg.de when a configured SMPL folder is incomplete.
    """
    gender = normalise_gender(gender)
    folder = resolve_smpl_dir(model_dir)
    data, mean, name = _read(gender, folder)
    if folder is None:
        _say_open_body_once(gender)
    return BodyModel(
        data,
        mean,
        name=name,
        gender=gender if folder is not None else "neutral",
        chunk_size=chunk_size,
        dtype=dtype or torch.float32,
    )


def load_bodies(model_dir: str | os.PathLike | None = None, **kwargs: Any) -> dict[str, BodyModel]:
    """Neutral, male and female bodies (the open body serves all three when SMPL is absent)."""
    if resolve_smpl_dir(model_dir) is None:
        body = load_body("neutral", None, **kwargs)
        return {g: body for g in GENDERS}
    return {g: load_body(g, model_dir, **kwargs) for g in GENDERS}


def forward_gendered(
    bodies: Mapping[str, BodyModel], genders: Any, betas, pose, joints_only: bool = False
) -> BodyOutput:
    """Per-sample body choice: sample ``i`` goes through ``bodies[normalise_gender(genders[i])]``.

    ``genders`` (B,) holds 'm'/'f'/'n', full names, or codes 0 = male / 1 = female / -1 =
    neutral as in SPIN's 3DPW files (a list, an array or a tensor on any device); ``betas``
    (B, 10), ``pose`` (B, 24, 3, 3) or (B, 72). Samples whose genders map to the same body object
    (e.g. the open body serving all three) go through one forward. Outputs are in the input
    order. Bodies must share the vertex count.
    """
    names = _gender_names(genders)
    if len(names) != betas.shape[0]:
        raise ShapeError(
            f"genders must have one entry per sample ({betas.shape[0]}), got {len(names)}"
        )
    missing = sorted(set(names) - set(bodies))
    if missing:
        raise DataError(f"no body for gender(s) {missing}; bodies given: {sorted(bodies)}")
    groups: dict[int, tuple[Any, list]] = {}
    for g in sorted(set(names)):
        groups.setdefault(id(bodies[g]), (bodies[g], []))[1].append(np.flatnonzero(names == g))
    if len(groups) == 1:  # one body for the whole batch: no gather, no reorder
        body = next(iter(groups.values()))[0]
        return (body.joints_only if joints_only else body)(betas, pose)
    parts, index = [], []
    for body, sel in groups.values():
        idx = torch.as_tensor(np.sort(np.concatenate(sel)), device=betas.device)
        run = body.joints_only if joints_only else body
        parts.append(run(betas[idx], pose[idx]))
        index.append(idx)

    order = torch.argsort(torch.cat(index))
    return _cat(parts)[order]


def _gender_names(genders: Any):
    """(B,) genders in any accepted spelling -> (B,) numpy array of 'neutral'/'male'/'female'."""
    if hasattr(genders, "detach"):
        genders = genders.detach().cpu().numpy()
    arr = np.asarray(genders).ravel()
    if arr.dtype == object:
        return np.array([normalise_gender(g) for g in arr], dtype=str)
    codes, inverse = np.unique(arr, return_inverse=True)  # one lookup per distinct spelling
    return np.array([normalise_gender(c) for c in codes], dtype=str)[inverse.ravel()]
