"""Is the demo's imbalance real? Closed-form linear heads on the demo features, scored by `ihmr eval`.

Fits two ridge regressions from the cached demo features to the observed 6-D pose and betas:
plain least squares (the MSE solution) and the same with inverse-density sample weights over
(family, severity bin) (the reweighting baseline, using the generator's own bins: an oracle). Both
are evaluated with the balanced metrics on the demo test set. If MSE is visibly worse on the tail
(bX tail10/tail5) and reweighting trades head accuracy for tail accuracy, the demo carries the
bias that Balanced MSE is meant to remove. Also shown: the same with noise-free training labels,
which isolates the label noise as the cause.

    python scripts/demo_linear_check.py --out runs/demo_check
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def ridge(x, y, w, lam=1e-2):
    mu = np.average(x, 0, w)
    xc = x - mu
    b = np.average(y, 0, w)
    a = (xc * w[:, None]).T @ xc + lam * len(x) * np.eye(x.shape[1])
    return mu, np.linalg.solve(a, (xc * w[:, None]).T @ (y - b)), b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/demo_check")
    ap.add_argument("--noise-free", action="store_true", help="demo without label noise")
    args = ap.parse_args()
    from ihmr.geometry import axis_angle_to_matrix, matrix_to_rot6d, rot6d_to_matrix
    from ihmr.io import save_npz
    from ihmr.pose.demo_data import DemoConfig, make_demo
    from ihmr.pose.evaluate import markdown_table
    from ihmr.pose.features import FeatureStore
    from ihmr.pose.jobs import eval_job
    from ihmr.pose.split import GenderedBodies

    out = Path(args.out)
    cfg = DemoConfig(severity_noise=0.0, joint_noise=0.0) if args.noise_free else DemoConfig()
    make_demo(out / "demo", cfg)
    tr = np.load(out / "demo/dataset_extras/demo_train.npz")
    xtr = FeatureStore(out / "demo/features/demo_train").array().astype(np.float64)
    xte = FeatureStore(out / "demo/features/demo_test").array().astype(np.float64)
    r6 = matrix_to_rot6d(axis_angle_to_matrix(torch.tensor(tr["pose"]).reshape(-1, 24, 3)))
    y = np.concatenate([r6.reshape(len(xtr), 144).numpy(), tr["shape"]], 1)
    key = tr["family"] * 10 + np.minimum((tr["severity"] * 10).astype(int), 9)
    cnt = np.bincount(key)
    weights = {"mse": np.ones(len(y)), "reweight": 1.0 / np.maximum(cnt[key], 20)}
    bodies = GenderedBodies.load()
    split = None
    for name, w in weights.items():
        mu, coef, b = ridge(xtr, y, w / w.mean())
        p = (xte - mu) @ coef + b
        rot = rot6d_to_matrix(torch.tensor(p[:, :144]).reshape(-1, 24, 6)).float().numpy()
        save_npz(out / f"{name}.npz", pose=rot, betas=p[:, 144:].astype(np.float32))
        m, _ = eval_job(out / "demo/dataset_extras/demo_test.npz", out / name,
                        predictions=out / f"{name}.npz", split=split, renders=0, bodies=bodies)
        split = out / name / "split.npz" if split is None else split
        print(markdown_table(m, f"linear head, {name}" + (" (noise-free labels)" if args.noise_free else "")))


if __name__ == "__main__":
    main()
