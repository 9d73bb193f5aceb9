"""An offline age demo in the DIR format: ``demo.csv`` (``age,path,split``) and small JPEG images.

Each image shows a soft-edged disk on a noisy background. The disk's radius and grey level both
grow with an *apparent* age ``f = t + e``, where ``t`` is the true (continuous) age and
``e ~ N(0, noise_sd^2)`` is appearance noise (people look older or younger than they are); the
label is the integer age ``floor(t)``, as in IMDB-WIKI. Because the image only reveals ``f``, an MSE
(or L1) regressor learns ``E[t | f]``, which is pulled towards the crowded adult ages for
children and the elderly: the label-imbalance effect Balanced MSE corrects (paper Sec. 3.1-3.2).

Label distribution: a long tail like IMDB-WIKI-DIR (a broad peak at young adults, few children and
elderly), ages 0..99. Validation and test take ``min(n // 3, cap)`` images per integer age from the
pool (the DIR rule, with a smaller cap), the rest is training. With the defaults: 6,230
training, 636 validation and 636 test JPEG images of 32 x 32 pixels, about 7 MB, generated in
about ten seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import check_at_least
from ..io import atomic_path, check_writable_dir, write_text

MAX_AGE = 100


def age_pool_counts(
    total: int = 7500, peak: float = 33.0, width: float = 12.0, floor: float = 0.03
) -> np.ndarray:
    """(100,) number of generated images per integer age 0..99: a gaussian bump at ``peak``
    (``width`` years) over a small ``floor`` (relative to the peak), scaled to about ``total``."""
    a = np.arange(MAX_AGE)
    dens = np.exp(-0.5 * ((a - peak) / width) ** 2) + floor
    # fewer very young children and very old people, as in the real data
    dens *= np.clip((a + 1) / 8.0, 0.15, 1.0) * np.clip((105 - a) / 30.0, 0.15, 1.0)
    return np.maximum(np.round(dens / dens.sum() * total).astype(int), 2)


def render_ages(apparent: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(N, size, size, 3) uint8 RGB images whose disk radius and brightness encode ``apparent``
    age (N,) in years."""
    n = len(apparent)
    s = np.clip(apparent / MAX_AGE, -0.1, 1.1)[:, None, None]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx = size / 2 + rng.uniform(-3, 3, (n, 1, 1))
    cy = size / 2 + rng.uniform(-3, 3, (n, 1, 1))
    radius = size * (0.18 + 0.25 * s)
    alpha = np.clip(radius - np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) + 0.5, 0.0, 1.0)[..., None]
    grey = 0.35 + 0.6 * s[..., None]  # always brighter than the background
    tint = rng.uniform(0.85, 1.0, (n, 1, 1, 3))
    disk = grey * tint
    bg = rng.uniform(0.0, 0.2, (n, 1, 1, 3)) + rng.normal(0, 0.03, (n, size, size, 3))
    img = alpha * disk + (1 - alpha) * bg
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def make_demo(
    out_dir: str | os.PathLike,
    *,
    total: int = 7500,
    size: int = 32,
    noise_sd: float = 5.0,
    cap: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``out_dir/demo.csv`` and ``out_dir/images/*.png``; return a summary dict.

    Args:
        total: approximate number of images over all splits.
        size: image side in pixels.
        noise_sd: standard deviation (years) of the apparent-age noise; the irreducible error.
        cap: at most this many validation (and test) images per integer age.
        seed: everything is a function of it.
    """
    for value, name, least in (
        (total, "total", 1),
        (size, "size", 8),
        (cap, "cap", 1),
        (seed, "--seed", 0),
    ):
        check_at_least(value, least, name)
    out = check_writable_dir(out_dir)
    rng = np.random.default_rng(seed)
    counts = age_pool_counts(total)
    ages = np.repeat(np.arange(MAX_AGE), counts)
    split = np.empty(len(ages), dtype=object)
    start = 0
    for n in counts:  # DIR rule: val and test take min(n // 3, cap) per age, the rest trains
        k = min(n // 3, cap)
        block = np.array(["val"] * k + ["test"] * k + ["train"] * (n - 2 * k), dtype=object)
        split[start : start + n] = block[rng.permutation(n)]
        start += n
    true_age = ages + rng.uniform(0, 1, len(ages))
    images = render_ages(true_age + rng.normal(0, noise_sd, len(ages)), size, rng)
    (out / "images").mkdir(exist_ok=True)
    order = rng.permutation(len(ages))  # file order carries no label information
    lines = ["age,path,split"]
    for j, i in enumerate(order):
        rel = f"images/{j:05d}.jpg"
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(images[i], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
        if not ok:
            raise OSError(f"could not encode {str(out / rel)!r}")
        with atomic_path(out / rel) as tmp:
            tmp.write_bytes(buf.tobytes())
        lines.append(f"{ages[i]},{rel},{split[i]}")
    csv_path = write_text(out / "demo.csv", "\n".join(lines) + "\n")
    n_bytes = sum(p.stat().st_size for p in (out / "images").glob("*.jpg"))
    return {
        "csv": str(csv_path),
        "root": str(out),
        "n": int(len(ages)),
        "splits": {s: int((split == s).sum()) for s in ("train", "val", "test")},
        "megabytes": round(n_bytes / 2**20, 2),
        "noise_sd": noise_sd,
        "size": size,
    }


def ensure_demo(out_dir: str | os.PathLike, **kwargs: Any) -> Path:
    """Generate the demo into ``out_dir`` unless ``out_dir/demo.csv`` exists; return the CSV."""
    csv_path = Path(out_dir) / "demo.csv"
    if not csv_path.is_file():
        make_demo(out_dir, **kwargs)
    return csv_path
