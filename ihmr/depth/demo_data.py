"""An offline NYUD2-DIR stand-in: indoor-like rooms rendered with pyrender, in the real file layout.

Each scene is a closed room (floor, ceiling, four walls) with furniture-like shapes (tables on
legs, cabinets, boxes, chairs), lit by a point light near the camera; several camera poses per
room. The depth distribution is skewed like NYUD2's: most pixels lie at 2-4 m, few are near
(0.7-1.5 m, from objects close to the camera) or far (5-9.8 m, long rooms). The test scenes are
drawn with near objects and long rooms more often so that the balanced mask can pick equal pixel
counts from most bins (the real test mask is balanced the same way).

Written files (see :mod:`ihmr.depth.data` for the layout): RGB PNGs, 8-bit training depth
(v = round(d / 10 * 255)), 16-bit test depth in mm, the two CSV files, the balanced mask
(N_test, 228, 304) and ``shots.json`` computed from the training pixel counts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from ihmr.render.backend import import_pyrender, shared_offscreen_renderer

from ..errors import DataError, check_at_least
from ..io import atomic_path, check_writable_dir, save_npz, write_text
from . import data as D

IMAGE_WH = (320, 240)  # short side 240: the reader's resize is then the identity
YFOV = 0.86  # radians; NYUD2's Kinect has about 49 deg vertical field of view


def _pyrender():
    """pyrender imported headless by :mod:`ihmr.render.backend` (EGL, else OSMesa)."""
    return import_pyrender()


def _box(size, centre, colour, pyrender, trimesh):
    m = trimesh.creation.box(size)
    m.apply_translation(centre)
    mat = pyrender.MetallicRoughnessMaterial(
        baseColorFactor=[*colour, 1.0], metallicFactor=0.0, roughnessFactor=0.9
    )
    return pyrender.Mesh.from_trimesh(m, material=mat, smooth=False)


def _room(rng, far: bool, near_p: float, pyrender, trimesh):
    """Meshes of one room; the camera stands at x = 0, z = 0 looking down -z."""
    depth = rng.uniform(5.5, 9.8) if far else rng.uniform(3.0, 4.6)
    width = rng.uniform(3.0, 5.0)
    cam_h = rng.uniform(1.0, 1.5)
    height = rng.uniform(2.5, 3.0)
    col = lambda: rng.uniform(0.25, 0.95, 3)  # noqa: E731
    t = 0.05
    parts = [
        ((width, t, depth + 1), (0, -cam_h - t / 2, -depth / 2 + 0.5), col()),  # floor
        ((width, t, depth + 1), (0, height - cam_h + t / 2, -depth / 2 + 0.5), col()),  # ceiling
        ((width, height, t), (0, height / 2 - cam_h, -depth - t / 2), col()),  # back wall
        ((width, height, t), (0, height / 2 - cam_h, 1.0 + t / 2), col()),  # wall behind camera
        ((t, height, depth + 1), (-width / 2 - t / 2, height / 2 - cam_h, -depth / 2 + 0.5), col()),
        ((t, height, depth + 1), (width / 2 + t / 2, height / 2 - cam_h, -depth / 2 + 0.5), col()),
    ]
    floor = -cam_h
    for _ in range(rng.integers(1, 5)):  # furniture against the walls and in the room
        kind = rng.choice(["table", "cabinet", "box", "chair"])
        z = -rng.uniform(1.8, min(depth - 0.4, 4.2))
        x = rng.uniform(-width / 2 + 0.5, width / 2 - 0.5)
        c = col()
        if kind == "table":
            w, d, h = rng.uniform(0.8, 1.6), rng.uniform(0.6, 1.0), rng.uniform(0.7, 0.8)
            parts.append(((w, 0.04, d), (x, floor + h, z), c))
            for sx in (-1, 1):
                for sz in (-1, 1):
                    parts.append(
                        (
                            (0.05, h, 0.05),
                            (x + sx * (w / 2 - 0.05), floor + h / 2, z + sz * (d / 2 - 0.05)),
                            c,
                        )
                    )
        elif kind == "cabinet":
            w, d, h = rng.uniform(0.5, 1.2), rng.uniform(0.4, 0.6), rng.uniform(1.0, 2.0)
            parts.append(((w, h, d), (x, floor + h / 2, z), c))
        elif kind == "chair":
            s, h = rng.uniform(0.4, 0.5), rng.uniform(0.42, 0.48)
            parts.append(((s, 0.05, s), (x, floor + h, z), c))
            parts.append(((s, 0.45, 0.05), (x, floor + h + 0.22, z - s / 2), c))
            for sx in (-1, 1):
                for sz in (-1, 1):
                    parts.append(
                        ((0.04, h, 0.04), (x + sx * s / 2.3, floor + h / 2, z + sz * s / 2.3), c)
                    )
        else:
            s = rng.uniform(0.3, 0.8, 3)
            parts.append((tuple(s), (x, floor + s[1] / 2, z), c))
    if rng.random() < near_p:  # an object close to the camera: the rare near depths
        s = rng.uniform(0.4, 0.9, 3)
        z = -rng.uniform(0.75, 1.2) - s[2] / 2
        parts.append((tuple(s), (rng.uniform(-0.4, 0.4), rng.uniform(-0.6, 0.2), z), col()))
    return [_box(size, c, colour, pyrender, trimesh) for size, c, colour in parts]


def _camera_pose(rng) -> np.ndarray:
    yaw, pitch = rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.05)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    pose = np.eye(4)
    pose[:3, :3] = ry @ rx
    pose[:3, 3] = [rng.uniform(-0.3, 0.3), 0.0, rng.uniform(-0.2, 0.2)]
    return pose


def _render_split(renderer, pyrender, trimesh, rng, n_scenes, views, far_p, near_p):
    for s in range(n_scenes):
        scene = pyrender.Scene(ambient_light=[0.25, 0.25, 0.25], bg_color=[0, 0, 0, 1])
        for mesh in _room(rng, rng.random() < far_p, near_p, pyrender, trimesh):
            scene.add(mesh)
        cam = scene.add(
            pyrender.PerspectiveCamera(yfov=YFOV, aspectRatio=IMAGE_WH[0] / IMAGE_WH[1])
        )
        light = scene.add(pyrender.PointLight(intensity=rng.uniform(8.0, 14.0)))
        for v in range(views):
            pose = _camera_pose(rng)
            scene.set_pose(cam, pose)
            scene.set_pose(light, pose)
            rgb, depth = renderer.render(scene)
            noise = rng.normal(0, 3.0, rgb.shape)  # sensor noise, so colour alone is not a cue
            yield s, v, np.clip(rgb + noise, 0, 255).astype(np.uint8), depth.astype(np.float32)


def balanced_mask(depths: np.ndarray, per_bin: int, rng: np.random.Generator) -> np.ndarray:
    """(N, H, W) bool selecting up to ``per_bin`` random pixels from every depth bin 7..99."""
    bins = D.depth_bins(depths).ravel()
    valid = depths.ravel() >= D.MIN_DEPTH
    mask = np.zeros(bins.size, dtype=bool)
    for b in range(7, D.N_BINS):
        idx = np.flatnonzero(valid & (bins == b))
        if idx.size:
            mask[rng.choice(idx, size=min(per_bin, idx.size), replace=False)] = True
    return mask.reshape(depths.shape)


def write_split_files(
    root: Path,
    rows: dict,
    test_depths: list,
    counts: np.ndarray,
    per_bin: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict]:
    """The NYUD2-DIR files beside the images: ``data/test_balanced_mask.npy`` (equal pixels per
    depth bin of the test maps), ``data/shots.json``, ``data/train_bin_counts.npz`` and the split
    CSVs ``data/nyu2_{train,test}.csv`` of ``rows``. Returns the mask and the shots."""
    mask = balanced_mask(np.stack(test_depths), per_bin, rng)
    with atomic_path(root / "data" / "test_balanced_mask.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, mask)
    shots = D.shots_from_counts(counts)
    write_text(root / "data" / "shots.json", json.dumps(shots) + "\n")
    save_npz(root / "data" / "train_bin_counts.npz", counts=counts)
    for split in ("train", "test"):
        write_text(root / "data" / f"nyu2_{split}.csv", "\n".join(rows[split]) + "\n")
    return mask, shots


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1] if img.ndim == 3 else img))
    if not ok:
        raise DataError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def make_demo_dataset(
    out: str | Path,
    train_scenes: int = 30,
    test_scenes: int = 16,
    views: int = 8,
    per_bin: int = 1500,
    seed: int = 0,
) -> dict:
    """Render the demo dataset into ``out`` (the dataset root); return a summary dict."""
    import trimesh

    for value, name, least in (
        (train_scenes, "--train-scenes", 1),
        (test_scenes, "--test-scenes", 1),
        (views, "views", 1),
        (per_bin, "per_bin", 1),
        (seed, "--seed", 0),
    ):
        check_at_least(value, least, name)
    pyrender = _pyrender()
    root = check_writable_dir(out)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    # The process-wide renderer: deleting a pyrender renderer terminates the EGL display for
    # every other renderer in the process (see ihmr.render.backend.shared_offscreen_renderer).

    renderer = shared_offscreen_renderer()
    renderer.viewport_width, renderer.viewport_height = IMAGE_WH
    rows = {"train": [], "test": []}
    test_depths, counts = [], np.zeros(D.N_BINS, np.int64)
    try:
        for split, n, far_p, near_p in (
            ("train", train_scenes, 0.08, 0.1),
            ("test", test_scenes, 0.5, 0.5),
        ):
            for s, v, rgb, depth in _render_split(
                renderer, pyrender, trimesh, rng, n, views, far_p, near_p
            ):
                rel = Path("data") / f"nyu2_{split}" / f"room_{s:04d}_out"
                _write_png(root / rel / f"{v}.png", rgb)
                if split == "train":
                    raw = np.clip(np.round(depth / 10.0 * 255.0), 0, 255).astype(np.uint8)
                    counts += np.bincount(
                        D.depth_bins(
                            D.decode_depth(raw, "train")[raw >= np.ceil(D.MIN_DEPTH / 10 * 255)]
                        ).ravel(),
                        minlength=D.N_BINS,
                    )
                else:
                    raw = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
                    test_depths.append(D.center_crop(D.decode_depth(raw, "test")))
                _write_png(root / rel / f"{v}_depth.png", raw)
                rows[split].append(f"{rel}/{v}.png,{rel}/{v}_depth.png")
    finally:
        del renderer  # the shared renderer lives until exit
    mask, shots = write_split_files(root, rows, test_depths, counts, per_bin, rng)
    return {
        "root": str(root),
        "train_images": len(rows["train"]),
        "test_images": len(rows["test"]),
        "mask_pixels": int(mask.sum()),
        "seconds": round(time.perf_counter() - t0, 1),
        "share_2_4m": float(counts[20:40].sum() / counts.sum()),
        "shots": {k: len(v) for k, v in shots.items()},
    }
