"""The depth demo's sigma study: R re-trained with BNI / GAI at several sigmas, against MSE.

Runs on the features an ``ihmr depth demo`` run cached (``OUT/features.npz``), so stage 1 is not
repeated; each R run takes seconds. Prints balanced RMSE (mean +- std over seeds), the paired
difference to MSE, and the mean signed error in a few depth ranges (where the bias goes).

    python docs/studies/depth_demo_sigma.py --out runs/depth-demo --sigmas 0.2,0.4,0.6,0.8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/depth-demo", help="folder of an ihmr depth demo run")
    ap.add_argument("--sigmas", default="0.2,0.4,0.6,0.8")
    ap.add_argument("--losses", default="bni,gai")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--head", default="pixel", choices=("pixel", "hu"), help="R (see ihmr.depth.rrt)"
    )
    a = ap.parse_args()

    import torch

    from ihmr.depth.data import Layout, depth_bins, load_shots
    from ihmr.depth.demo import head_config
    from ihmr.depth.rrt import (
        head_inputs,
        head_priors,
        head_targets,
        load_head_features,
        make_head,
        predict_pixels,
        train_head,
    )

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    feats = load_head_features(out / "features.npz")
    shots = load_shots(Layout(feats["fingerprint"]["root"]).path("data/shots.json"))
    bins = depth_bins(feats["test_t"])
    ranges = [(0.7, 1.5), (1.5, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0), (8.0, 10.0)]

    def run(loss: str, sigma: float, seed: int) -> tuple[float, list[float]]:
        cfg = head_config(loss, seed, sigma, head=a.head)
        counts, gmm = head_priors(head_targets(feats, cfg), cfg.loss, 0)
        r = train_head(feats, cfg, shots, gmm=gmm, counts=counts)
        head = make_head(cfg)
        head.load_state_dict(r["state"])
        err = (
            predict_pixels(head, head_inputs(feats, cfg, "test"), feats["test_idx"])
            - feats["test_t"]
        )
        bias = [float(err[(bins >= 10 * lo) & (bins < 10 * hi)].mean()) for lo, hi in ranges]
        return r["test"]["balanced"]["overall"]["rmse"], bias

    seeds = range(a.seeds)
    base = {s: run("mse", 1.0, s) for s in seeds}
    rows = [
        ("MSE", "-", [base[s][0] for s in seeds], None, np.mean([base[s][1] for s in seeds], 0))
    ]
    for loss in a.losses.split(","):
        for sigma in (float(v) for v in a.sigmas.split(",")):
            res = {s: run(loss, sigma, s) for s in seeds}
            diff = [res[s][0] - base[s][0] for s in seeds]
            rows.append(
                (
                    loss.upper(),
                    sigma,
                    [res[s][0] for s in seeds],
                    diff,
                    np.mean([res[s][1] for s in seeds], 0),
                )
            )
    head = " | ".join(f"bias {lo:g}-{hi:g} m" for lo, hi in ranges)
    print(f"| loss | sigma | bRMSE (m) | minus MSE, paired | lower in | {head} |")
    print("|---" * (5 + len(ranges)) + "|")
    for name, sigma, vals, diff, bias in rows:
        d = "-" if diff is None else f"{np.mean(diff):+.3f} ± {np.std(diff, ddof=1):.3f}"
        k = "-" if diff is None else f"{sum(v < 0 for v in diff)} / {len(diff)}"
        print(
            f"| {name} | {sigma} | {np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f} | {d} | {k} | "
            + " | ".join(f"{b:+.2f}" for b in bias)
            + " |"
        )
    print(json.dumps({"out": str(out), "seeds": list(seeds)}))


if __name__ == "__main__":
    main()
