"""Benchmark the per-pixel depth losses: training images/s and peak memory, MSE vs BNI vs GAI.

One training step = forward of the Hu et al. network on a batch of 304 x 228 images, the
per-pixel loss on the (114, 152) output, backward, Adam step. Each loss runs in its own
subprocess so that the peak resident memory (CPU) or peak allocated memory (CUDA) is its own.
Also timed: the loss alone (forward + backward on a fixed prediction), and the largest tensor
autograd saves for the loss (the memory bound of the chunked balancing term).

    python scripts/bench_depth.py                      # full model, CPU (and CUDA if present)
    python scripts/bench_depth.py --model demo --steps 5

Prints a table and the ratios to the MSE step (target: BNI / GAI <= 1.5x MSE). Not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _one(args) -> dict:
    import resource

    import numpy as np
    import torch

    from ihmr.depth.losses import DepthLoss
    from ihmr.depth.model import HuDepthNet
    from ihmr.priors import fit_gmm

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    gen = np.random.default_rng(0)
    depth_sample = np.clip(gen.gamma(9.0, 0.33, 200_000), 0.5, 10.0)  # skewed: most at 2-4 m
    counts = np.bincount(
        np.minimum((depth_sample[depth_sample >= 0.7] * 10).astype(int), 99), minlength=100
    )
    gmm = (
        fit_gmm(depth_sample[depth_sample >= 0.7], 16, max_samples=20_000)
        if args.loss == "gai"
        else None
    )
    loss_fn = DepthLoss(args.loss, counts, gmm, chunk=args.chunk).to(dev)
    net = (HuDepthNet() if args.model == "full" else HuDepthNet(0.25, (1, 1, 1, 1), 0.125)).to(dev)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x = torch.randn(args.batch, 3, 228, 304, device=dev)
    y = torch.from_numpy(gen.choice(depth_sample, (args.batch, 1, 114, 152))).float().to(dev)
    sync = (lambda: torch.cuda.synchronize()) if dev.startswith("cuda") else (lambda: None)

    def step():
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    sync()
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    step_s = (time.perf_counter() - t) / args.steps
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if dev.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    # The loss alone, and the biggest tensor its autograd graph keeps.
    p = (y + 0.3 * torch.randn_like(y)).requires_grad_()
    sizes = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: sizes.append(t.numel()) or t, lambda t: t
    ):
        loss_fn(p, y)
    t = time.perf_counter()
    for _ in range(args.loss_reps):
        loss_fn(p, y).backward()
    sync()
    loss_s = (time.perf_counter() - t) / args.loss_reps
    return {
        "loss": args.loss,
        "step_s": step_s,
        "images_per_s": args.batch / step_s,
        "peak_mb": peak,
        "loss_ms": 1e3 * loss_s,
        "max_saved_mb": max(sizes) * 4 / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["full", "demo"], default="full")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--loss-reps", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=32768)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--losses", default="mse,bni,gai")
    ap.add_argument("--devices", default="auto", help="auto = cpu, plus cuda when available")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        args.loss = args.one
        print(json.dumps(_one(args)))
        return
    import torch

    devices = (
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if args.devices == "auto"
        else args.devices.split(",")
    )
    base = [
        sys.executable,
        __file__,
        "--model",
        args.model,
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--loss-reps",
        str(args.loss_reps),
        "--chunk",
        str(args.chunk),
        "--threads",
        str(args.threads),
    ]
    print(
        f"model {args.model}, batch {args.batch}, input 304 x 228, output 152 x 114, "
        f"chunk {args.chunk}, torch {torch.__version__}"
    )
    print(
        "| device | loss | step s | images/s | peak MB | step / MSE | loss fwd+bwd ms | "
        "largest saved loss tensor MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for dev in devices:
        mse = None
        for loss in args.losses.split(","):
            out = subprocess.run(
                base + ["--one", loss, "--device", dev], check=True, capture_output=True, text=True
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            mse = r["step_s"] if loss == "mse" else mse
            ratio = f"{r['step_s'] / mse:.2f}x" if mse else "–"
            print(
                f"| {dev} | {loss} | {r['step_s']:.3f} | {r['images_per_s']:.2f} | "
                f"{r['peak_mb']:.0f} | {ratio} | {r['loss_ms']:.1f} | {r['max_saved_mb']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
