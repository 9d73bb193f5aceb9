"""The IHMR balanced split: distance of each test sample to the mean mesh, 100 regions.

Definition (paper Sec. 4.2.2 and the mmhuman3d release, ``HumanImageDataset._report_ihmr``):

- the *mean mesh* is the neutral body driven by the mean parameters (6-D mean pose including the
  global orientation, mean betas);
- ``d_n = mean_v || V_gt[n, v] - V_mean[v] ||`` in millimetres, with ground-truth vertices from the
  gendered body (female for gender 1, male for 0, neutral when unknown), true global orientation,
  no translation;
- ``delta = (max d - min d) / R`` with R = 100 regions, and
  ``region_n = int((d_n - min d) / delta - 0.001)`` (truncation toward zero), exactly as released:
  region r holds ``min + (r + 0.001) delta < d <= min + (r + 1.001) delta`` (region 0 also holds
  the minimum).

Option ``metric="geodesic"`` replaces ``d`` by the mean over the 24 joints of the geodesic angle
(degrees) between the ground-truth and mean-pose rotations, as the paper's Fig. 9 caption says.
The release never saved its split; :func:`save_split` does (``.npz``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..body import forward_gendered, load_bodies
from ..errors import DataError, shape_str
from ..geometry import axis_angle_to_matrix, geodesic_distance, rot6d_to_matrix
from ..io import atomic_path, open_npz, save_npz

N_REGIONS = 100
METRICS = ("vertex", "geodesic")


class GenderedBodies:
    """Neutral body for the mean mesh and predicted joints; male/female bodies for ground truth
    (and, in the IHMR release's MPVPE, for the predicted meshes: ``ihmr.pose.evaluate``).

    Any object with the ``ihmr.body`` interface works (``body(betas=, pose=)`` -> ``.vertices``,
    ``.joints_h36m``; ``body.mean_params``). Missing genders fall back to the neutral body.
    """

    def __init__(self, neutral: Any, male: Any = None, female: Any = None) -> None:
        self.neutral = neutral
        self.by_gender = {"neutral": neutral, "male": male or neutral, "female": female or neutral}

    @classmethod
    def load(cls, model_dir: str | os.PathLike | None = None) -> "GenderedBodies":
        b = load_bodies(model_dir)
        return cls(b["neutral"], b["male"], b["female"])

    @property
    def single(self) -> bool:
        """True when one body serves every gender (e.g. the open body, or no gendered bodies)."""
        return all(b is self.neutral for b in self.by_gender.values())

    @property
    def name(self) -> str:
        return str(getattr(self.neutral, "name", type(self.neutral).__name__))

    def gt_forward(self, pose, betas, gender) -> tuple[Any, Any]:
        """Ground-truth ``(vertices (b, V, 3), joints_h36m (b, 17, 3))`` with each sample's body:
        :func:`ihmr.body.forward_gendered` with the ``gender`` (b,) codes of SPIN's files (0 male,
        1 female, -1 unknown: neutral)."""
        out = forward_gendered(self.by_gender, gender, betas, pose)
        return out.vertices, out.joints_h36m


def mean_params_of(body: Any):
    """``(rotmat (1, 24, 3, 3), betas (1, 10))`` float32 from ``body.mean_params``."""
    mp = body.mean_params
    pose6d = torch.as_tensor(mp["pose"], dtype=torch.float32).reshape(1, 24, 6)
    betas = torch.as_tensor(mp["shape"], dtype=torch.float32).reshape(1, 10)
    return rot6d_to_matrix(pose6d), betas


def mean_mesh(body: Any):
    """(V, 3) vertices in metres of the neutral body driven by its mean parameters."""
    rot, betas = mean_params_of(body)
    with torch.no_grad():
        return body(betas=betas, pose=rot).vertices[0]


def as_rotmats(pose):
    """(N, 72) axis-angle or (N, 24, 3, 3) -> (N, 24, 3, 3) float32 tensor."""
    pose = torch.as_tensor(pose, dtype=torch.float32)
    if pose.ndim == 2 and pose.shape[1] == 72:
        return axis_angle_to_matrix(pose.reshape(-1, 24, 3))
    if pose.ndim == 4 and tuple(pose.shape[1:]) == (24, 3, 3):
        return pose
    raise DataError(
        f"pose must be (N, 72) axis-angle or (N, 24, 3, 3) rotation matrices, got "
        f"{shape_str(pose.shape)}"
    )


def vertex_distances(bodies: GenderedBodies, pose, betas, gender, chunk: int = 1024) -> np.ndarray:
    """(N,) mean vertex distance (mm) of each ground-truth mesh to the mean mesh."""
    ref = mean_mesh(bodies.neutral)
    rot = as_rotmats(pose)
    betas = torch.as_tensor(betas, dtype=torch.float32)
    out = np.empty(len(rot), dtype=np.float64)
    with torch.no_grad():
        for a in range(0, len(rot), chunk):
            verts, _ = bodies.gt_forward(
                rot[a : a + chunk], betas[a : a + chunk], torch.as_tensor(gender)[a : a + chunk]
            )
            out[a : a + chunk] = ((verts - ref).norm(dim=-1).mean(-1) * 1000.0).double().numpy()
    return out


def geodesic_distances(body: Any, pose) -> np.ndarray:
    """(N,) mean over the 24 joints of the geodesic angle (degrees) to the mean pose."""
    ref, _ = mean_params_of(body)
    with torch.no_grad():
        ang = geodesic_distance(as_rotmats(pose), ref.expand(1, 24, 3, 3))
    return np.degrees(ang.double().mean(-1).numpy())


def region_edges(lo: float, hi: float, n_regions: int = N_REGIONS) -> np.ndarray:
    """(n_regions + 1,) equal-width edges ``lo + k (hi - lo) / n_regions``."""
    return lo + (hi - lo) / n_regions * np.arange(n_regions + 1)


def assign_regions(d, lo: float, hi: float, n_regions: int = N_REGIONS) -> np.ndarray:
    """Released rule ``int((d - lo) / delta - 0.001)``; values outside [lo, hi] are clipped."""
    d = np.asarray(d, dtype=np.float64)
    delta = (hi - lo) / n_regions
    if not delta > 0:
        raise DataError(f"all {len(d)} distances are equal ({lo}); cannot form regions")
    r = np.trunc((d - lo) / delta - 0.001).astype(np.int64)
    return np.clip(r, 0, n_regions - 1)


@dataclasses.dataclass
class Split:
    """Distances (N,), region per sample (N,), edges (R + 1,), counts (R,), how they were made;
    optional training counts on the same edges (``train_counts``, out-of-range counted apart)."""

    distance: np.ndarray
    region: np.ndarray
    edges: np.ndarray
    counts: np.ndarray
    metric: str = "vertex"
    units: str = "mm"
    body: str = ""
    train_counts: np.ndarray | None = None
    train_outside: tuple[int, int] = (0, 0)

    @property
    def n_regions(self) -> int:
        return len(self.counts)

    def __len__(self) -> int:
        return len(self.distance)


def split_from_distances(
    d, n_regions: int = N_REGIONS, metric: str = "vertex", body: str = "", train_distances=None
) -> Split:
    """Build a :class:`Split` from test distances (and optionally training distances)."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2 or not np.isfinite(d).all():
        raise DataError(
            f"distances must be a finite (N,) array with N >= 2, got shape {shape_str(d.shape)}"
        )
    lo, hi = float(d.min()), float(d.max())
    region = assign_regions(d, lo, hi, n_regions)
    split = Split(
        d,
        region,
        region_edges(lo, hi, n_regions),
        np.bincount(region, minlength=n_regions),
        metric,
        "mm" if metric == "vertex" else "deg",
        body,
    )
    if train_distances is not None:
        t = np.asarray(train_distances, dtype=np.float64)
        split.train_counts = np.bincount(assign_regions(t, lo, hi, n_regions), minlength=n_regions)
        split.train_outside = (int((t < lo).sum()), int((t > hi).sum()))
    return split


def distances_for(
    labels, bodies: GenderedBodies, metric: str = "vertex", chunk: int = 1024
) -> np.ndarray:
    """Distances of every sample of a :class:`~ihmr.pose.spin_data.SpinLabels` set."""
    if metric not in METRICS:
        raise DataError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    if metric == "geodesic":
        return geodesic_distances(bodies.neutral, labels.pose)
    return vertex_distances(bodies, labels.pose, labels.betas, labels.gender, chunk)


def make_split(
    labels,
    bodies: GenderedBodies,
    metric: str = "vertex",
    n_regions: int = N_REGIONS,
    train_labels=None,
    chunk: int = 1024,
) -> Split:
    """The balanced split of a test set (``train_labels``: also count training samples)."""
    d = distances_for(labels, bodies, metric, chunk)
    t = None
    if train_labels is not None:
        valid = train_labels.subset(np.flatnonzero(train_labels.has_smpl.numpy()))
        t = distances_for(valid, bodies, metric, chunk)
    return split_from_distances(d, n_regions, metric, bodies.name, t)


def save_split(path: str | os.PathLike, split: Split) -> Path:
    extra = {}
    if split.train_counts is not None:
        extra = {"train_counts": split.train_counts, "train_outside": np.array(split.train_outside)}
    return save_npz(
        path,
        distance=split.distance,
        region=split.region,
        edges=split.edges,
        counts=split.counts,
        metric=np.str_(split.metric),
        units=np.str_(split.units),
        body=np.str_(split.body),
        **extra,
    )


def load_split(path: str | os.PathLike, n: int | None = None) -> Split:
    """Read a split saved by :func:`save_split`; ``n`` = expected test-set size (checked)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file {str(path)!r} does not exist; make it with `ihmr split`")

    with open_npz(path, "split file") as z:
        missing = [k for k in ("distance", "region", "edges", "counts") if k not in z.files]
        if missing:
            raise DataError(f"{str(path)!r} is not an ihmr split (missing {missing})")
        s = Split(
            z["distance"],
            z["region"].astype(np.int64),
            z["edges"],
            z["counts"],
            str(z["metric"]) if "metric" in z.files else "vertex",
            str(z["units"]) if "units" in z.files else "mm",
            str(z["body"]) if "body" in z.files else "",
            z["train_counts"] if "train_counts" in z.files else None,
            tuple(z["train_outside"].tolist()) if "train_outside" in z.files else (0, 0),
        )
    if n is not None and len(s) != n:
        raise DataError(
            f"split {str(path)!r} has {len(s)} samples but the test set has {n}; "
            "make the split from the same test labels"
        )
    return s


def plot_split(split: Split, path: str | os.PathLike) -> Path:
    """Fig. 9 style: test (and training) sample counts per region, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = 0.5 * (split.edges[:-1] + split.edges[1:])
    width = split.edges[1] - split.edges[0]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    if split.train_counts is not None:
        ax.bar(
            centres,
            split.train_counts / max(split.train_counts.sum(), 1),
            width=width,
            alpha=0.5,
            label=f"train (n={int(split.train_counts.sum())})",
            color="tab:orange",
        )
    ax.bar(
        centres,
        split.counts / split.counts.sum(),
        width=width,
        alpha=0.6,
        label=f"test (n={len(split)})",
        color="tab:blue",
    )
    ax.set_yscale("log")
    ax.set_xlabel(
        f"distance to the mean {'mesh' if split.metric == 'vertex' else 'pose'} "
        f"({split.units}), {split.n_regions} regions"
    )
    ax.set_ylabel("share of samples")
    ax.legend(frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)
