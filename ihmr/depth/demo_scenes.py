"""A fast NYUD2-DIR stand-in for ``ihmr depth demo``: ray-cast rooms whose depth cue is haze.

The pyrender rooms of :mod:`ihmr.depth.demo_data` carry depth only through perspective, which a
network trained for a minute on a CPU cannot learn (its demo stayed at delta1 ~ 0.25). Here the
scenes are the same kind of rooms (floor, ceiling, walls, boxes on the floor, sometimes a box
close to the camera), ray-cast in numpy, and each pixel's colour carries its depth through
attenuation (Beer-Lambert haze, without airlight)::

    rgb = 255 * a_s * tint_s * exp(-d / L) + sensor noise,     log a_s ~ N(log A, (sigma / L)^2)

``d`` is the pixel's depth (camera z, metres), ``L`` the attenuation length, ``a_s`` the albedo of
the surface ``s`` the pixel lies on (one draw per wall, floor, ceiling and box) and ``tint_s`` a
colour of unit luminance. Reading depth from luminance, ``-L log(lum / (255 A))``, is then off by
``-L (log a_s - log A) ~ N(0, sigma^2)``: the label noise given the input is Gaussian with one
sigma in metres at every depth, and the same in training and test, which is what Balanced MSE
assumes (paper Sec. 3.2-3.3, Eq. 3.2 and 3.5). Neighbouring pixels of one surface share the
draw, so no network can average it away.

The label imbalance follows NYUD2: most rooms are 3-4.6 m deep, so most training pixels lie at
2-4 m; near boxes (0.7-1.5 m) and long rooms (5.5-9.8 m) are rare in training. Test scenes draw
near boxes and long rooms often, so the balanced mask can take equal pixel counts from every
0.1 m bin (the real test mask is balanced the same way).

Files are written in the NYUD2-DIR layout (see :mod:`ihmr.depth.data`), readable by the same
code as the real data: RGB PNGs, 8-bit training depth, 16-bit test depth in mm, the CSV files,
the balanced mask, ``shots.json``, the training bin counts and ``demo.json`` (the settings).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io import atomic_path, check_writable_dir, write_text
from . import data as D
from .demo_data import write_split_files

IMAGE_WH = (320, 240)  # short side 240: the reader's resize is the identity
YFOV = 0.86  # radians, about NYUD2's Kinect


@dataclass(frozen=True)
class SceneSettings:
    """Generator settings (written to ``demo.json``); the defaults are the demo's."""

    train_scenes: int = 40
    test_scenes: int = 16
    views: int = 8
    attenuation_m: float = 12.0
    """L: the haze halves the brightness every L ln 2 metres."""
    noise_sigma_m: float = 0.4
    """sigma: the depth-read error caused by the surface albedo (metres, Gaussian)."""
    mean_albedo: float = 0.6
    sensor_noise: float = 1.0
    """Per-pixel Gaussian noise on the 8-bit colour values."""
    per_bin: int = 1500
    """Balanced-mask pixels per 0.1 m bin."""
    seed: int = 0


def _rays(pose: np.ndarray, wh=IMAGE_WH) -> tuple[np.ndarray, np.ndarray]:
    """Camera origin (3,) and world ray directions (3, H, W) whose camera-z component is -1, so
    the ray parameter t of a hit is its depth along the camera axis."""
    w, h = wh
    f = (h / 2) / np.tan(YFOV / 2)
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    cam = np.stack([(u - w / 2) / f, -(v - h / 2) / f, -np.ones_like(u)])
    d = np.einsum("ij,jhw->ihw", pose[:3, :3], cam)
    d = np.where(np.abs(d) < 1e-9, 1e-9, d)  # no ray exactly parallel to a face
    return pose[:3, 3], d


def _hit_room(o, inv, lo, hi):
    """Exit distance of rays (inverse directions ``inv`` (3, H, W)) from the inside of the box
    [lo, hi], and the face id (0-5: -x, +x, -y, +y, -z, +z)."""
    pos = inv > 0
    t = np.where(pos, (hi - o)[:, None, None] * inv, (lo - o)[:, None, None] * inv)
    axis = np.argmin(t, axis=0)
    face = 2 * axis + np.take_along_axis(pos, axis[None], 0)[0]
    return np.take_along_axis(t, axis[None], 0)[0], face


def _hit_box(o, inv, lo, hi):
    """Entry distance of rays into the box [lo, hi] (inf where missed)."""
    t1, t2 = (lo - o)[:, None, None] * inv, (hi - o)[:, None, None] * inv
    a, b = np.minimum(t1, t2), np.maximum(t1, t2)
    near = np.maximum(np.maximum(a[0], a[1]), a[2])
    far = np.minimum(np.minimum(b[0], b[1]), b[2])
    return np.where((near <= far) & (near > 1e-6), near, np.inf)


def _room(rng, depth: float, near_p: float):
    """(room lo, room hi, [(box lo, box hi)]) of a room ``depth`` metres deep; the camera stands
    near the origin looking down -z."""
    width, height, cam_h = rng.uniform(3.0, 5.0), rng.uniform(2.5, 3.0), rng.uniform(1.0, 1.5)
    lo, hi = np.array([-width / 2, -cam_h, -depth]), np.array([width / 2, height - cam_h, 1.0])
    boxes = []
    for _ in range(rng.integers(1, 5)):  # furniture on the floor
        s = np.array([rng.uniform(0.4, 1.4), rng.uniform(0.4, 1.8), rng.uniform(0.4, 1.0)])
        z = -rng.uniform(1.8, min(depth - 0.4, 4.2))
        x = rng.uniform(-width / 2 + 0.5, width / 2 - 0.5)
        c = np.array([x, -cam_h + s[1] / 2, z])
        boxes.append((c - s / 2, c + s / 2))
    if rng.random() < near_p:  # a box close to the camera: the rare near depths
        s = rng.uniform(0.4, 0.9, 3)
        c = np.array(
            [rng.uniform(-0.4, 0.4), rng.uniform(-0.6, 0.2), -rng.uniform(0.75, 1.2) - s[2] / 2]
        )
        boxes.append((c - s / 2, c + s / 2))
    return lo, hi, boxes


def _room_depths(rng, n: int, far_p: float) -> np.ndarray:
    """Room depths (n,): 3-4.6 m, except a share ``far_p`` of long rooms, 5.5-9.8 m. The long
    rooms are stratified over that range (one per equal slice, in random order), so even a few of
    them reach the far bins."""
    far = rng.random(n) < far_p
    depth = rng.uniform(3.0, 4.6, n)
    k = int(far.sum())
    depth[far] = 5.5 + 4.3 * rng.permutation((np.arange(k) + rng.random(k)) / max(k, 1))
    return depth


def _pose(rng) -> np.ndarray:
    yaw, pitch = rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.05)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    pose = np.eye(4)
    pose[:3, :3] = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array(
        [[1, 0, 0], [0, cp, -sp], [0, sp, cp]]
    )
    pose[:3, 3] = [rng.uniform(-0.3, 0.3), 0.0, rng.uniform(-0.2, 0.2)]
    return pose


def _box_window(pose, lo, hi, wh=IMAGE_WH):
    """Pixel rows and columns (slices) that can see the box [lo, hi]: the bounding rectangle of
    its projected corners, or the whole image when a corner is not in front of the camera."""
    w, h = wh
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    cam = (corners - pose[:3, 3]) @ pose[:3, :3]  # world -> camera (rotation is orthonormal)
    if (cam[:, 2] > -1e-3).any():
        return slice(0, h), slice(0, w)
    f = (h / 2) / np.tan(YFOV / 2)
    u = w / 2 + f * cam[:, 0] / -cam[:, 2]
    v = h / 2 - f * cam[:, 1] / -cam[:, 2]
    c0, c1 = int(np.clip(np.floor(u.min()) - 1, 0, w)), int(np.clip(np.ceil(u.max()) + 1, 0, w))
    r0, r1 = int(np.clip(np.floor(v.min()) - 1, 0, h)), int(np.clip(np.ceil(v.max()) + 1, 0, h))
    return slice(r0, r1), slice(c0, c1)


def render_view(room, pose, albedo, tint, st: SceneSettings, rng) -> tuple[np.ndarray, np.ndarray]:
    """One view: (rgb (240, 320, 3) uint8, depth (240, 320) float32 metres, camera z).

    ``albedo`` (6 + n_boxes,) and ``tint`` (6 + n_boxes, 3): per surface (room faces, then boxes).
    """
    lo, hi, boxes = room
    o, d = _rays(pose)
    inv = (1.0 / d).astype(np.float32)
    o32 = o.astype(np.float32)
    t, surf = _hit_room(o32, inv, lo.astype(np.float32), hi.astype(np.float32))
    for k, (blo, bhi) in enumerate(boxes):
        rows, cols = _box_window(pose, blo, bhi)
        tb = _hit_box(o32, inv[:, rows, cols], blo.astype(np.float32), bhi.astype(np.float32))
        closer = tb < t[rows, cols]
        t[rows, cols] = np.where(closer, tb, t[rows, cols])
        surf[rows, cols] = np.where(closer, 6 + k, surf[rows, cols])
    depth = t  # the camera-frame ray has z component -1, so t is the depth along the camera axis
    lum = albedo.astype(np.float32)[surf] * np.exp(-depth / np.float32(st.attenuation_m))
    noise = rng.standard_normal((*depth.shape, 3), dtype=np.float32) * np.float32(st.sensor_noise)
    rgb = np.float32(255.0) * lum[..., None] * tint.astype(np.float32)[surf] + noise
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8), depth.astype(np.float32)


def _surfaces(rng, n: int, st: SceneSettings) -> tuple[np.ndarray, np.ndarray]:
    log_a = np.log(st.mean_albedo) + rng.normal(0.0, st.noise_sigma_m / st.attenuation_m, n)
    tint = 1.0 + rng.uniform(-0.15, 0.15, (n, 3))
    tint /= (tint @ np.array([0.299, 0.587, 0.114]))[:, None]  # unit luminance
    return np.exp(log_a), tint


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(
        ".png",
        np.ascontiguousarray(img[..., ::-1] if img.ndim == 3 else img),
        [cv2.IMWRITE_PNG_COMPRESSION, 1],
    )  # fast; lossless at any level
    if not ok:
        raise OSError(f"could not encode {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def make_haze_dataset(out: str | Path, settings: SceneSettings = SceneSettings()) -> dict:
    """Write the demo dataset into ``out`` (the dataset root); return a summary dict.

    ``demo.json`` is written last, so a folder holding it is complete.
    """
    st = settings
    root = check_writable_dir(out)
    rng = np.random.default_rng(st.seed)
    t0 = time.perf_counter()
    rows = {"train": [], "test": []}
    test_depths, counts = [], np.zeros(D.N_BINS, np.int64)
    for split, n, far_p, near_p in (
        ("train", st.train_scenes, 0.15, 0.1),
        ("test", st.test_scenes, 0.5, 0.5),
    ):
        for s, depth in enumerate(_room_depths(rng, n, far_p)):
            room = _room(rng, depth, near_p)
            albedo, tint = _surfaces(rng, 6 + len(room[2]), st)
            rel = Path("data") / f"nyu2_{split}" / f"room_{s:04d}_out"
            for v in range(st.views):
                rgb, depth = render_view(room, _pose(rng), albedo, tint, st, rng)
                _write_png(root / rel / f"{v}.png", rgb)
                if split == "train":  # 8-bit, m = v / 255 * 10 (the NYUD2-DIR training encoding)
                    raw = np.clip(np.round(depth / 10.0 * 255.0), 0, 255).astype(np.uint8)
                    dm = D.decode_depth(raw, "train")
                    counts += np.bincount(D.depth_bins(dm[dm >= D.MIN_DEPTH]), minlength=D.N_BINS)
                else:  # 16-bit millimetres
                    raw = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
                    test_depths.append(D.center_crop(D.decode_depth(raw, "test")))
                _write_png(root / rel / f"{v}_depth.png", raw)
                rows[split].append(f"{rel}/{v}.png,{rel}/{v}_depth.png")
    mask, shots = write_split_files(root, rows, test_depths, counts, st.per_bin, rng)
    write_text(root / "demo.json", json.dumps(asdict(st), indent=1) + "\n")
    return {
        "root": str(root),
        "train_images": len(rows["train"]),
        "test_images": len(rows["test"]),
        "mask_pixels": int(mask.sum()),
        "seconds": round(time.perf_counter() - t0, 1),
        "share_2_4m": float(counts[20:40].sum() / counts.sum()),
        "shots": {k: len(v) for k, v in shots.items()},
    }
