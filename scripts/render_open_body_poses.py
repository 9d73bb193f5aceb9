"""Render the open body in a few poses, front and side, as one grid PNG for the README.

    python scripts/render_open_body_poses.py [--out docs/img/open_body.png] [--panel 240]

Poses (SMPL axis-angle, the body frame: y up, facing +z, the subject's left on +x): rest
(T-pose), arms raised, a deep squat, a front kick. Each is turned 180 degrees about x into SPIN's
camera frame (y down) and rendered with the same camera distance, so sizes compare.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

J = {
    "pelvis": 0,
    "l_hip": 1,
    "r_hip": 2,
    "spine1": 3,
    "l_knee": 4,
    "r_knee": 5,
    "spine2": 6,
    "l_ankle": 7,
    "r_ankle": 8,
    "spine3": 9,
    "neck": 12,
    "l_collar": 13,
    "r_collar": 14,
    "head": 15,
    "l_shoulder": 16,
    "r_shoulder": 17,
    "l_elbow": 18,
    "r_elbow": 19,
}


def pose(**joints: tuple[float, float, float]) -> np.ndarray:
    p = np.zeros((24, 3))
    for name, aa in joints.items():
        p[J[name]] = aa
    return p


POSES = {
    "rest": pose(),
    "arms raised": pose(
        l_shoulder=(0, 0, 1.25),
        r_shoulder=(0, 0, -1.25),
        l_elbow=(0, 0, 0.25),
        r_elbow=(0, 0, -0.25),
    ),
    "deep squat": pose(
        l_hip=(-2.0, 0, -0.25),
        r_hip=(-2.0, 0, 0.25),
        l_knee=(2.35, 0, 0),
        r_knee=(2.35, 0, 0),
        l_ankle=(-0.35, 0, 0),
        r_ankle=(-0.35, 0, 0),
        spine1=(0.35, 0, 0),
        spine2=(0.2, 0, 0),
        l_shoulder=(0, -1.35, -0.2),
        r_shoulder=(0, 1.35, 0.2),
    ),
    "kick": pose(
        r_hip=(-1.45, 0, 0),
        r_knee=(0.25, 0, 0),
        r_ankle=(-0.5, 0, 0),
        l_knee=(0.15, 0, 0),
        spine1=(-0.15, 0, 0),
        spine2=(-0.1, 0, 0),
        l_shoulder=(0, -0.3, -1.0),
        r_shoulder=(0, 0.5, 1.1),
        l_elbow=(0, -0.6, 0),
        r_elbow=(0, 0.6, 0),
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "open_body.png")
    ap.add_argument("--panel", type=int, default=240, help="panel height in pixels")
    args = ap.parse_args()

    import torch

    from ihmr.body import load_body
    from ihmr.render import MeshRenderer, comparison_strip, grid, save_png, side_view
    from ihmr.render.camera import fit_translation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = load_body("neutral")
    aa = np.stack(list(POSES.values()))
    aa[:, 0] = (np.pi, 0.0, 0.0)  # into SPIN's camera frame (y down)
    with torch.no_grad():
        verts = body(
            torch.zeros(len(aa), 10), torch.as_tensor(aa.reshape(len(aa), 72), dtype=torch.float32)
        ).vertices.numpy()
    h = args.panel
    w = int(h * 0.75)
    focal = 5.0 * h
    views = [[v.astype(np.float64) for v in verts], [side_view(v) for v in verts]]
    # one camera distance for all panels (the largest needed), each mesh centred in its panel
    tz = max(
        fit_translation(v, focal, (h, w), fill=0.9)[2] + v[:, 2].min() for vs in views for v in vs
    )
    rows = []
    with MeshRenderer(w, h) as renderer:
        for vs, suffix in zip(views, ("front", "side"), strict=True):
            panels = []
            for v in vs:
                mid = 0.5 * (v.min(0) + v.max(0))
                t = np.array([-mid[0], -mid[1], tz - mid[2]])
                panels.append(renderer.render(v, body.faces, t, focal_length=focal, size=(h, w)))
            rows.append(comparison_strip(panels, [f"{name} ({suffix})" for name in POSES]))
    path = save_png(args.out, grid(rows))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
