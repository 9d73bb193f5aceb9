"""The best balanced predictor of an IHMR demo dataset, scored like a trained head.

The demo's features are an injective affine map of the observed pose (and betas and camera),
so the observed pose can be read back from the test features by least squares on the
generator's own map (``ihmr.pose.demo_data.FeatureMap``). Under Balanced MSE's model that
observed pose is the balanced optimum (the best predictor under a balanced label distribution):
its balanced metrics are what a Balanced MSE head can reach, and an MSE head that beats it on a
*balanced* test set means the data reward MSE's shrinkage, i.e. the test set is not balanced in
some direction where the observation is noisy.

    python docs/studies/ihmr_demo_oracle.py data/demo --out runs/oracle
    # then compare with the MSE run of `ihmr demo` (runs/demo/mse/eval/metrics.json)

Writes ``<out>/oracle_pred.npz`` (pose as rotation matrices, betas read back the same way) and
evaluates it with ``ihmr eval --predictions`` (balanced split of the data folder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def read_back(data: Path) -> dict[str, np.ndarray]:
    """Observed pose (N, 24, 3, 3) and betas (N, 10) of the test set from its features."""
    from ihmr.geometry import rot6d_to_matrix
    from ihmr.pose.demo_data import FeatureMap
    from ihmr.pose.features import FeatureStore

    meta = json.loads((data / "demo.json").read_text())
    cfg = meta["config"]
    fmap = FeatureMap(cfg["feature_dim"], cfg["seed"])
    x = FeatureStore(data / "features" / "demo_test").array().astype(np.float64)
    h = np.linalg.lstsq(fmap.a.T.astype(np.float64), (x - fmap.c).T, rcond=None)[0].T
    rot = rot6d_to_matrix(torch.as_tensor(h[:, :144]).reshape(-1, 24, 6)).numpy()
    return {"pose": rot, "betas": h[:, 144:154] / 0.3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", type=Path, help="demo data folder (ihmr demo-data)")
    p.add_argument("--out", type=Path, default=Path("runs/oracle"))
    a = p.parse_args()
    from ihmr.pose.jobs import eval_job

    a.out.mkdir(parents=True, exist_ok=True)
    np.savez(a.out / "oracle_pred.npz", **read_back(a.data))
    split = a.data / "split.npz"
    eval_job(
        labels=a.data / "dataset_extras" / "demo_test.npz",
        predictions=a.out / "oracle_pred.npz",
        split=split if split.is_file() else None,
        out=a.out / "eval",
        renders=0,
    )
    print((a.out / "eval" / "metrics.md").read_text())


if __name__ == "__main__":
    main()
