"""Time offscreen rendering of the open body (pyrender, EGL or OSMesa on this machine).

    python scripts/bench_render.py [--repeats 20]

Prints milliseconds per render for a reused renderer at 224 and 512 px, the one-call
``render_mesh`` without a renderer argument, the side view and the first-use setup cost.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _ms(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000.0 * (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()

    t0 = time.perf_counter()
    from ihmr.render import MeshRenderer, render_mesh, setup_backend

    platform = setup_backend()
    path = importlib.resources.files("ihmr.assets") / "open_body" / "open_body.npz"
    with path.open("rb") as f:
        d = np.load(f)
        v, faces = d["v_template"].astype(np.float64) * [1, -1, -1], d["f"]
    renderer = MeshRenderer(512, 512)
    setup_s = time.perf_counter() - t0
    cam = [0.9, 0.0, 0.0]
    print(f"platform {platform}, mesh V={len(v)} F={len(faces)}, cores={os.cpu_count()}")
    print(f"first use (imports + OpenGL context): {setup_s:.2f} s")
    for size in (224, 512):
        ms = _ms(
            lambda size=size: render_mesh(v, faces, cam, size=size, renderer=renderer), args.repeats
        )
        print(f"reused renderer, {size} x {size}: {ms:.1f} ms per render")
    ms_new = _ms(lambda: render_mesh(v, faces, cam, size=224), args.repeats)
    ms_side = _ms(
        lambda: render_mesh(v, faces, cam, size=512, side=True, renderer=renderer), args.repeats
    )
    print(f"side view 512 x 512 (reused): {ms_side:.1f} ms")
    print(
        f"render_mesh without a renderer, 224 x 224: {ms_new:.1f} ms (the OpenGL context is shared)"
    )
    renderer.close()


if __name__ == "__main__":
    main()
