"""What the depth demo's data allows: perfect maps at low resolution, and the ideal regressor.

1. A perfect depth map at the network's output size (bilinear down, then up to the 228 x 304 crop
   as the evaluation does) on the balanced test pixels: what the resolution alone costs.
2. The ideal regressor for read noise sigma: it reads x = y + N(0, sigma^2) and predicts the
   posterior mean of y under the training prior (MSE's optimum) or under a prior uniform over the
   test bins (Balanced MSE's optimum). Balanced RMSE, delta1 and the mean signed error (bias) per
   depth range, integrated over a 1 cm grid of y and x, bins weighted equally as on the balanced
   test pixels. The gap between the two is all that a balanced loss can gain from the prior.

    python docs/studies/depth_demo_bounds.py --out runs/depth-demo --sigmas 0.3,0.4,0.5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

RANGES = [(0.7, 1.5), (1.5, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0), (8.0, 10.0)]


def perfect_maps(gt: np.ndarray, mask: np.ndarray, sizes) -> None:
    """Print delta1, RMSE and balanced RMSE of the ground truth ``gt`` (N, 228, 304) brought down
    to each size and back up, on the ``mask`` pixels."""
    import torch
    import torch.nn.functional as F

    from ihmr.depth import data as D

    t = gt[mask].astype(np.float64)
    bins = D.depth_bins(t)
    for wh in sizes:
        low = torch.from_numpy(np.stack([D.resize(g, wh) for g in gt]))[:, None]
        up = F.interpolate(low, size=gt.shape[1:], mode="bilinear", align_corners=True)[
            :, 0
        ].numpy()
        p = np.clip(up[mask], 1e-3, None)
        per_bin = [np.mean((p[bins == b] - t[bins == b]) ** 2) for b in np.unique(bins)]
        print(
            f"perfect {wh[0]} x {wh[1]} map: "
            f"delta1 {np.mean(np.maximum(p / t, t / p) < 1.25):.3f}, "
            f"RMSE {np.sqrt(np.mean((p - t) ** 2)):.3f} m, "
            f"balanced RMSE {np.sqrt(np.mean(per_bin)):.3f} m"
        )


def ideal(counts: np.ndarray, test_bins: np.ndarray, sigma: float, step: float = 0.01) -> dict:
    n_bins = len(counts)
    per = int(round(0.1 / step))
    y = (np.arange(n_bins * per) + 0.5) * step
    x = np.arange(-2.0, n_bins * 0.1 + 2.0, step)
    like = np.exp(-0.5 * ((x[:, None] - y[None, :]) / sigma) ** 2)  # p(x | y) up to a constant
    priors = {
        "MSE optimum": np.repeat(counts / counts.sum(), per),
        "balanced optimum": np.repeat(np.isin(np.arange(n_bins), test_bins).astype(float), per),
    }
    out = {}
    for name, prior in priors.items():
        w = like * prior[None, :]
        pred = np.clip((w @ y) / np.maximum(w.sum(1), 1e-300), 1e-3, None)  # E[y | x] per x
        mse, d1, bias = [], [], []
        for b in test_bins:
            ys = y[b * per : (b + 1) * per]
            px = np.exp(-0.5 * ((x[None, :] - ys[:, None]) / sigma) ** 2)
            px /= px.sum(1, keepdims=True)  # p(x | y) for the y of this bin
            err = pred[None, :] - ys[:, None]
            ratio = np.maximum(pred[None, :] / ys[:, None], ys[:, None] / pred[None, :])
            mse.append((px * err**2).sum(1).mean())
            d1.append((px * (ratio < 1.25)).sum(1).mean())
            bias.append((px * err).sum(1).mean())
        bias = np.array(bias)
        out[name] = (
            np.sqrt(np.mean(mse)),
            np.mean(d1),
            [
                bias[(test_bins >= round(lo * 10)) & (test_bins < round(hi * 10))].mean()
                for lo, hi in RANGES
            ],
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/depth-demo", help="folder of an ihmr depth demo run")
    ap.add_argument("--sigmas", default="0.4")
    a = ap.parse_args()
    from ihmr.depth import data as D

    root = Path(a.out) / "data"
    test = D.NYUD2DIR(D.Layout(str(root)), "test")
    mask = np.load(root / "data/test_balanced_mask.npy").astype(bool)
    gt = np.stack([test.load(i)[1] for i in range(len(test))]).astype(np.float32)
    perfect_maps(gt, mask, [(32, 24), (64, 48)])
    counts = np.load(root / "data/train_bin_counts.npz")["counts"].astype(np.float64)
    test_bins = np.unique(D.depth_bins(gt[mask].astype(np.float64)))
    ranges = " / ".join(f"{lo:g}-{hi:g}" for lo, hi in RANGES)
    for sigma in (float(v) for v in a.sigmas.split(",")):
        for name, (brmse, d1, bias) in ideal(counts, test_bins, sigma).items():
            print(
                f"ideal, sigma {sigma} m, {name}: balanced RMSE {brmse:.3f} m, delta1 {d1:.3f}, "
                f"bias at {ranges} m: " + " / ".join(f"{v:+.2f}" for v in bias)
            )


if __name__ == "__main__":
    main()
