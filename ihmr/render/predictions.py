"""Render body parameters from predictions files to PNGs (the library side of ``ihmr render``).

A predictions file is an ``.npz`` with

- ``pose``: (N, 72) axis-angle or (N, 24, 3, 3) rotation matrices, in camera coordinates as SPIN
  predicts them (the global orientation includes SPIN's 180 degree turn about x);
- ``betas`` (or ``shape``): (N, 10);
- optional ``cam`` (N, 3) = [s, tx, ty], SPIN's weak-perspective camera of the 224 px crop;
- optional ``imgname`` (N,): image paths relative to the image folder;
- optional ``center`` (N, 2) and ``scale`` (N,): SPIN's crop of each image. With them a mesh is
  overlaid on the full image (focal length and principal point from the crop, see
  :mod:`ihmr.spin`); without them the image is taken to be the crop itself;
- optional ``gender`` (N,) ('m'/'f'/'n' or 0/1) for ground truth files.

Several files make a comparison strip per sample: image | ground truth | method A | method B.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from ihmr.body import forward_gendered, load_bodies, load_body
from ihmr.errors import ConfigError, DataError, ShapeError, check_finite_rows
from ihmr.io import check_writable_dir, read_image, read_npz
from ihmr.render.camera import fit_translation
from ihmr.render.mesh import GT_COLOR, METHOD_COLORS, MeshRenderer, side_view
from ihmr.render.strip import comparison_strip, grid, save_png
from ihmr.spin import crop_focal_length, crop_intrinsics, weak_perspective_to_translation

NUM_BETAS = 10
#: what to check when an image named by a predictions file is missing or unreadable
IMAGES_HINT = "check --images and the imgname entries of the predictions file"


def load_params(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read and check one predictions / ground-truth ``.npz`` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {str(path)!r} not found")

    d = read_npz(path, "predictions file")
    if "betas" not in d and "shape" in d:
        d["betas"] = d["shape"]
    for key in ("pose", "betas"):
        if key not in d:
            raise DataError(
                f"{path}: needs {key!r} (pose (N, 72) or (N, 24, 3, 3), betas "
                "(N, 10)); "
                f"found keys {sorted(d)}"
            )
    pose, betas = d["pose"].astype(np.float32), d["betas"].astype(np.float32)
    n = len(pose)
    if not (pose.shape == (n, 72) or pose.shape == (n, 24, 3, 3)):
        raise ShapeError(
            f"{path}: pose must be (N, 72) axis-angle or (N, 24, 3, 3), got {pose.shape}"
        )
    if betas.shape != (n, NUM_BETAS):
        raise ShapeError(
            f"{path}: betas must be ({n}, {NUM_BETAS}) to match pose, got {betas.shape}"
        )
    out = {"pose": pose, "betas": betas}
    for key, shape in (("cam", (n, 3)), ("center", (n, 2)), ("scale", (n,))):
        if key in d:
            if d[key].shape != shape:
                raise ShapeError(f"{path}: {key} must have shape {shape}, got {d[key].shape}")
            out[key] = d[key].astype(np.float64)
    for key in ("pose", "betas", "cam", "center", "scale"):
        if key in out:
            check_finite_rows(out[key], f"{path}: {key}", "repair or drop those samples")
    for key in ("imgname", "gender"):
        if key in d:
            if len(d[key]) != n:
                raise ShapeError(f"{path}: {key} must have {n} entries, got {len(d[key])}")
            out[key] = np.asarray(d[key]).astype(str)
    return out


def _vertices(params: dict, idx: np.ndarray, gendered: bool) -> tuple[np.ndarray, np.ndarray]:
    betas = torch.as_tensor(params["betas"][idx])
    pose = torch.as_tensor(params["pose"][idx])
    with torch.no_grad():
        if gendered and "gender" in params:
            bodies = load_bodies()
            out = forward_gendered(bodies, params["gender"][idx], betas, pose)
            faces = bodies["neutral"].faces
        else:
            body = load_body("neutral")
            out, faces = body(betas, pose), body.faces
    return out.vertices.numpy().astype(np.float64), faces


def panel_camera(vertices: np.ndarray, cam, image, crop, size: int):
    """Camera and backdrop of a panel: ``(translation, focal, principal point, (H, W), backdrop)``.

    - no ``cam``: the mesh is framed automatically on white (``size`` x ``size``);
    - ``cam`` and an ``image`` with its SPIN ``crop`` = (center, scale): the full image, Eq. (3)
      of :mod:`ihmr.spin`;
    - ``cam`` alone, or with an image that is the crop itself: a ``size`` x ``size`` crop, focal
      length 5000 px scaled from 224 px.
    """
    f = crop_focal_length(size)
    if cam is None:
        return fit_translation(vertices, f, (size, size)), f, None, (size, size), None
    t = weak_perspective_to_translation(cam)
    if image is not None and crop is not None:
        f, pp = crop_intrinsics(*crop)
        return t, f, pp, image.shape[:2], image
    if image is not None:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return t, f, None, (size, size), image


def render_params(
    files: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    gt: str | os.PathLike | None = None,
    image_dir: str | os.PathLike | None = None,
    side: bool = False,
    size: int = 512,
    first: int = 0,
    count: int | None = 16,
) -> list[Path]:
    """Render samples ``first .. first + count`` of each file in ``files`` (and of ``gt``) to
    ``out_dir/<index>_<image stem>.png``; returns the paths written.

    One file and no ``gt``: the mesh over its image (or on white). Otherwise a labelled strip
    [image] | [ground truth] | file 1 | file 2 ... ``side`` adds each mesh's side view below.
    The camera of a panel is its file's ``cam``, else the first predictions file's, else the
    mesh is framed automatically on white.
    """
    if not files:
        raise ConfigError("give at least one predictions file")
    labels = list(labels) if labels else [Path(f).stem for f in files]
    if len(labels) != len(files):
        raise ConfigError(f"got {len(labels)} labels for {len(files)} predictions files")
    preds = [load_params(f) for f in files]
    sets = ([("ground truth", load_params(gt), GT_COLOR, True)] if gt is not None else []) + [
        (lab, p, METHOD_COLORS[i % len(METHOD_COLORS)], False)
        for i, (lab, p) in enumerate(zip(labels, preds, strict=True))
    ]
    n = min(len(p["pose"]) for _, p, _, _ in sets)
    if any(len(p["pose"]) != n for _, p, _, _ in sets):
        raise ShapeError(
            f"predictions and ground truth must have the same number of samples, "
            f"got {[len(p['pose']) for _, p, _, _ in sets]}"
        )
    if not 0 <= first < n:
        raise ConfigError(f"--first must be in 0..{n - 1}, got {first}")
    idx = np.arange(first, n if count is None else min(n, first + count))
    names = next((p["imgname"] for _, p, _, _ in sets if "imgname" in p), None)
    if image_dir is not None and names is None:
        raise DataError("--images was given but no file has an 'imgname' array to find images")
    out_dir = check_writable_dir(out_dir)
    verts = [_vertices(p, idx, is_gt) for _, p, _, is_gt in sets]
    default_cam = next((p["cam"] for _, p, _, _ in sets if "cam" in p), None)
    written = []
    with MeshRenderer(size, size) as renderer:
        for k, i in enumerate(idx):
            image = (
                read_image(Path(image_dir) / names[i], hint=IMAGES_HINT)
                if image_dir is not None
                else None
            )
            crop = next((p for _, p, _, _ in sets if "center" in p and "scale" in p), None)
            front, back = [], []
            for (_, p, color, _), (v, faces) in zip(sets, verts, strict=True):
                cam = p["cam"][i] if "cam" in p else None
                cam = default_cam[i] if cam is None and default_cam is not None else cam
                box = None if crop is None else (crop["center"][i], crop["scale"][i])
                t, f, pp, hw, backdrop = panel_camera(v[k], cam, image, box, size)
                front.append(
                    renderer.render(
                        v[k],
                        faces,
                        t,
                        focal_length=f,
                        principal_point=pp,
                        image=backdrop,
                        size=hw,
                        color=color,
                    )
                )
                if side:
                    back.append(
                        renderer.render(
                            side_view(v[k]),
                            faces,
                            t,
                            focal_length=f,
                            principal_point=pp,
                            size=hw,
                            color=color,
                        )
                    )
            if len(sets) == 1 and not side:
                picture = front[0]
            else:
                lead = [image] if image is not None else []
                row = comparison_strip(lead + front, ["image"] * len(lead) + [s[0] for s in sets])
                if side:
                    blank = [np.full_like(image, 255)] if image is not None else []
                    row = grid(
                        [
                            row,
                            comparison_strip(
                                blank + back, [""] * len(blank) + [f"{s[0]} (side)" for s in sets]
                            ),
                        ]
                    )
                picture = row
            stem = Path(names[i]).stem if names is not None else "sample"
            written.append(save_png(out_dir / f"{i:05d}_{stem}.png", picture))
    return written
