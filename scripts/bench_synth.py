"""Benchmark of `ihmr synth`: the whole Table 4 batched, against one setting trained the
straightforward way (one model at a time, a DataLoader loop, ihmr.losses), in the same run.

    python scripts/bench_synth.py                 # full protocol (Table 4 + one setting)
    python scripts/bench_synth.py --epochs-scale 0.05 --seeds 1   # quick check of the script

Prints the wall times and their ratios; nothing is asserted. The batched program uses the
compiled (numba) path where it applies; ``--backend torch`` times the pure torch path instead.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def straightforward_setting(dist: str, skew: str, seed: int, epochs: int) -> float:
    """Train the six methods of one 1-D setting one after another like the released script:
    nn.Linear(1, 1), DataLoader(shuffle=True, batch 256), SGD momentum 0.9 + cosine, sigma in
    its own group, validation every epoch. Returns the wall time in seconds."""
    from torch.utils.data import DataLoader, TensorDataset

    from ihmr.losses import bmc_loss, gai_loss, prepare_gmm, weighted_mse_loss
    from ihmr.synthetic import spec as S
    from ihmr.synthetic.data import fit_true_prior, make_dataset

    t0 = time.perf_counter()
    proto = S.PROTOCOL_1D
    d = make_dataset(dist, skew, seed, proto)
    prior = prepare_gmm(fit_true_prior(dist, skew, S.GAI_COMPONENTS[dist]))
    x, y = (
        torch.tensor(d.x_train, dtype=torch.float32),
        torch.tensor(d.y_train, dtype=torch.float32),
    )
    inv = torch.tensor(1.0 / d.density_train, dtype=torch.float32)
    xv, yv = torch.tensor(d.x_val, dtype=torch.float32), torch.tensor(d.y_val, dtype=torch.float32)
    for method in S.METHODS:
        torch.manual_seed(seed)
        model = torch.nn.Linear(1, 1)
        learn = method in ("gai", "bmc")
        sigma = torch.tensor(1.5 if learn else 1.0, requires_grad=learn)
        opt = torch.optim.SGD(model.parameters(), lr=proto.lr, momentum=0.9)
        if learn:
            opt.add_param_group({"params": [sigma], "lr": proto.sigma_lr})
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        loader = DataLoader(TensorDataset(x, y, inv), batch_size=proto.batch_size, shuffle=True)
        best = float("inf")
        for _ in range(epochs):
            for xb, yb, wb in loader:
                p = model(xb)
                if method == "vanilla":
                    loss = weighted_mse_loss(p, yb)
                elif method == "reweight":
                    loss = weighted_mse_loss(p, yb, wb / wb.sum(), reduction="sum")
                elif method.startswith("gai"):
                    loss = gai_loss(p, yb, prior, sigma**2)
                else:
                    loss = bmc_loss(p, yb, sigma**2)
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
            with torch.no_grad():
                best = min(best, float(((model(xv) - yv) ** 2).mean()))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--epochs-scale",
        type=float,
        default=1.0,
        help="scale every epoch count (quick checks only; 1.0 = the protocol)",
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-straightforward", action="store_true")
    ap.add_argument("--backend", default="auto", choices=("auto", "compiled", "torch"))
    args = ap.parse_args()
    from ihmr.synthetic import SynthConfig, run_benchmark, set_threads

    if args.threads:
        set_threads(args.threads)
    from ihmr.synthetic import spec as S

    ep1 = max(1, round(S.PROTOCOL_1D.epochs * args.epochs_scale))
    ep2 = max(1, round(S.PROTOCOL_2D.epochs * args.epochs_scale))
    import numba

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), numba "
        f"{numba.__version__}, {numba.get_num_threads()} thread(s); epochs 1-D {ep1}, "
        f"2-D {ep2}; {args.seeds} seed(s)"
    )
    # One epoch of every family first: it loads (or, on the first run after an install, compiles
    # and caches) the numba kernels, a one-time cost reported separately.
    t0 = time.perf_counter()
    run_benchmark(
        SynthConfig(seeds=1, nonlinear=False, epochs_1d=1, epochs_2d=1, backend=args.backend)
    )
    print(f"warm-up (imports, kernel compilation or cache load): {time.perf_counter() - t0:.1f} s")
    cfg = SynthConfig(
        seeds=args.seeds, nonlinear=False, epochs_1d=ep1, epochs_2d=ep2, backend=args.backend
    )
    t0 = time.perf_counter()
    res = run_benchmark(cfg)
    total = time.perf_counter() - t0
    n_models = len(res.records)
    print(
        f"batched Table 4 ({n_models} models): {total:.1f} s  "
        + ", ".join(f"{k} {v:.1f} s" for k, v in res.seconds.items())
    )
    if args.skip_straightforward:
        return
    t_one = straightforward_setting("normal", "high", 0, ep1)
    print(
        f"straightforward, one setting (normal/high, seed 0, 6 models x {ep1} epochs): "
        f"{t_one:.1f} s"
    )
    # 1-D runs: 6 settings x seeds; MVN runs: 3 x seeds with 5x the epochs (10000 vs 2000).
    projected = t_one * args.seeds * (6 + 3 * ep2 / ep1)
    print(f"ratio straightforward one setting / batched whole table: {t_one / total:.2f}")
    print(
        f"projected straightforward whole table: {projected:.0f} s; "
        f"speed-up of the batched program: {projected / total:.1f}x"
    )
    print("median selected epoch:", int(np.median([r["selected_epoch"] for r in res.records])))


if __name__ == "__main__":
    main()
