"""Label priors for the balanced losses: Gaussian mixtures (GAI) and histograms (BNI, LDS,
reweighting), plus reading label files.

scikit-learn and scipy are imported only inside the functions that need them.
"""

from __future__ import annotations

import os

from .bins import (
    LDS,
    BinPrior,
    bin_index,
    edges_from_width,
    histogram_prior,
    lds_kernel,
    parse_bins,
    reweighting_weights,
    smooth_counts,
)
from .gmm import GMMPrior, PriorFitWarning, fit_gmm, read_prior_npz
from .labels import axis_angle_to_rotmat, pose_to_rotmat_labels, read_labels


def load_prior(path: str | os.PathLike) -> GMMPrior | BinPrior:
    """Load a prior ``.npz`` of either kind (dispatches on its ``metadata["kind"]``)."""
    _, meta = read_prior_npz(path, (), kind="any")
    return BinPrior.load(path) if meta.get("kind") == "bins" else GMMPrior.load(path)


__all__ = [
    "LDS",
    "BinPrior",
    "GMMPrior",
    "PriorFitWarning",
    "axis_angle_to_rotmat",
    "bin_index",
    "edges_from_width",
    "fit_gmm",
    "histogram_prior",
    "lds_kernel",
    "load_prior",
    "parse_bins",
    "pose_to_rotmat_labels",
    "read_labels",
    "reweighting_weights",
    "smooth_counts",
]
