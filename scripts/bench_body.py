"""Benchmark: body forward + MPJPE / PA-MPJPE / MPVPE at 3DPW test size, and joints-only speed-up.

Ground truth goes through gendered bodies (per-sample male/female), predictions (ground truth
plus noise) through the neutral body, streamed in chunks as an evaluation would; three random
6,890-vertex bodies in SMPL's layout stand in for SMPL (same sizes, so the same cost).

    OMP_NUM_THREADS=2 .venv/bin/python scripts/bench_body.py            # CPU, 2 threads
    .venv/bin/python scripts/bench_body.py --device cuda --chunk 4096    # GPU

Targets: <= 30 s and <= 3 GB peak RSS on 2 CPU cores; joints-only >= 5x faster.
Prints figures and ratios; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best_of(fn, device: str, repeats: int = 3) -> float:
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=35515, help="samples (3DPW test: 35,515)")
    ap.add_argument("--vertices", type=int, default=6890)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ratio-batch", type=int, default=1024, help="batch for the joints-only ratio")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device

    from ihmr.body import forward_gendered
    from ihmr.body.files import validate_body
    from ihmr.body.model import BodyModel
    from ihmr.body.testing import mean_params_arrays, random_body_arrays
    from ihmr.metrics.pose import pose_errors

    t0 = time.perf_counter()
    bodies = {
        g: BodyModel(
            validate_body(random_body_arrays(args.vertices, seed=s), g),
            mean_params_arrays(),
            gender=g,
            chunk_size=args.chunk,
        ).to(dev)
        for s, g in enumerate(("neutral", "male", "female"))
    }
    print(f"built 3 random {args.vertices}-vertex bodies in {time.perf_counter() - t0:.1f} s")

    g = torch.Generator().manual_seed(0)
    n = args.n
    gt_pose = 0.3 * torch.randn(n, 72, generator=g)
    gt_betas = torch.randn(n, 10, generator=g)
    genders = np.where(torch.rand(n, generator=g).numpy() < 0.5, "m", "f")
    pred_pose = gt_pose + 0.1 * torch.randn(n, 72, generator=g)
    pred_betas = gt_betas + 0.3 * torch.randn(n, 10, generator=g)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    errs: dict[str, list[torch.Tensor]] = {}
    _sync(dev)
    load = os.getloadavg()[0]
    t, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for i in range(0, n, args.chunk):
            s = slice(i, i + args.chunk)
            gt = forward_gendered(bodies, genders[s], gt_betas[s].to(dev), gt_pose[s].to(dev))
            pred = bodies["neutral"](pred_betas[s].to(dev), pred_pose[s].to(dev))
            for k, v in pose_errors(pred, gt).items():
                errs.setdefault(k, []).append(v.cpu())
    _sync(dev)
    total, cpu = time.perf_counter() - t, time.process_time() - cpu
    load = max(load, os.getloadavg()[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    means = {k: float(torch.cat(v).mean()) for k, v in errs.items()}

    print(
        f"device {dev}, {torch.get_num_threads()} threads, chunk {args.chunk}, "
        f"load average {load:.1f} on {os.cpu_count()} cores (above the core count = contended)"
    )
    print(
        f"evaluation of {n} samples (2 vertex forwards each + 3 metrics): wall {total:.2f} s "
        f"({1e6 * total / n:.0f} us/sample), process CPU time {cpu:.2f} s; target <= 30 s on "
        f"2 CPU cores: {'met' if total <= 30 else 'NOT met'} (wall)"
    )
    print(
        f"peak RSS {peak:.2f} GB (before the loop {rss0:.2f} GB); target <= 3 GB: "
        f"{'met' if peak <= 3 else 'NOT met'}"
    )
    if dev.startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GB")
    print("mean errors (mm): " + ", ".join(f"{k} {v:.1f}" for k, v in means.items()))

    body = bodies["neutral"]
    b = min(args.ratio_batch, n)
    from ihmr.geometry import axis_angle_to_matrix

    # Rotation matrices in, as in training (the head predicts 6-D -> matrices).
    betas = pred_betas[:b].to(dev)
    pose = axis_angle_to_matrix(pred_pose[:b].view(b, 24, 3)).to(dev)
    with torch.no_grad():
        body.joints_only(betas, pose)  # builds the pre-contraction once
        t_full = _best_of(lambda: body(betas, pose), dev)
        t_joints = _best_of(lambda: body.joints_only(betas, pose), dev)
        full, fast = body(betas, pose), body.joints_only(betas, pose)
    diff = max(
        float((getattr(full, k) - getattr(fast, k)).abs().max())
        for k in ("joints", "joints_h36m", "joints49")
    )
    print(
        f"batch {b} (wall, best of 3): full forward {1e3 * t_full:.1f} ms, joints-only "
        f"{1e3 * t_joints:.1f} ms, "
        f"ratio {t_full / t_joints:.1f}x (target >= 5x); max joint difference {diff:.1e} m"
    )


if __name__ == "__main__":
    main()
