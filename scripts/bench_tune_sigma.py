"""Cost of `ihmr tune-sigma` against one full training run of the same config, in the same run.

    python scripts/bench_tune_sigma.py                                   # the GAI demo, K = 1
    python scripts/bench_tune_sigma.py --config configs/ihmr/demo_bmc.yaml --budget-epochs 2
    python scripts/bench_tune_sigma.py --set optim.epochs=1 --set data.samples_per_epoch=500

Trains the config once as `ihmr train` does (with its test evaluation), then runs the sigma
search; prints wall and CPU seconds of both and their ratios. Nothing is asserted. CPU seconds
(this process, all threads) are the fairer figure on a shared machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path("configs/ihmr/demo_gai.yaml"))
    ap.add_argument("--data-root", default=None, help="demo data folder (default: the config's)")
    ap.add_argument("--budget-epochs", type=int, default=1)
    ap.add_argument("--grid", default=None, help="comma-separated sigmas (default: the task's)")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from ihmr.config import load_config
    from ihmr.pose.config import PoseTrainConfig
    from ihmr.pose.demo import ensure_demo_data
    from ihmr.pose.train import train
    from ihmr.sigma.pose import _ensure_demo_prior
    from ihmr.sigma.tasks import tune

    torch.set_num_threads(args.threads)
    sets = list(args.sets) + ([f"data.root={args.data_root}"] if args.data_root else [])
    sets += ["progress=false"]
    cfg = load_config(PoseTrainConfig, args.config, sets)
    if (Path(cfg.data.root) / "demo.json").is_file() or not Path(cfg.data.root).exists():
        ensure_demo_data(cfg.data.root)
    _ensure_demo_prior(cfg, print)
    grid = None if args.grid is None else [float(v) for v in args.grid.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        cfg.out = str(Path(tmp) / "full")
        res, w_full, c_full = timed(lambda: train(cfg))
        search, w_tune, c_tune = timed(
            lambda: tune(
                args.config,
                grid=grid,
                budget_epochs=args.budget_epochs,
                out=Path(tmp) / "tune",
                sets=sets,
                log=lambda m: None,
            )
        )
    s = search["search"]
    print(
        f"full run ({cfg.optim.epochs} epochs + test evaluation): {w_full:.1f} s wall, "
        f"{c_full:.1f} s CPU; test bMPVPE {res.eval_metrics['bMPVPE']['all']:.2f} mm"
        if res.eval_metrics
        else f"full run: {w_full:.1f} s wall, {c_full:.1f} s CPU"
    )
    print(
        f"search ({len(s.candidates)} sigmas, shared MSE start + {args.budget_epochs}-epoch "
        f"fine-tunes): {w_tune:.1f} s wall, {c_tune:.1f} s CPU"
    )
    print(f"ratio search / full run: {w_tune / w_full:.2f}x wall, {c_tune / c_full:.2f}x CPU")
    print(
        f"chosen sigma {s.sigma:g}, validation bMPVPE {s.score:.2f} mm; curve "
        + ", ".join(f"{a:g}: {b:.2f}" for a, b in s.curve)
    )


if __name__ == "__main__":
    main()
