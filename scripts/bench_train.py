"""Benchmark of `ihmr train` on cached features against a straightforward training loop.

Both train SPIN's HMR head with the IHMR losses (BMC on the pose, keypoints through the body,
betas, camera prior, Adam, clipping 35) on N cached 2048-d float16 features (synthetic values,
real shapes):

- ours: the trainer's epoch loop (ihmr.pose.train): features resident on the device, indices
  gathered there, joints-only body path, host sync every `log_every` steps, bf16 on CUDA;
- straightforward: a DataLoader over the CPU arrays (shuffled, batch by batch to the device), the
  full body forward (vertices built), and `loss.item()` every step (a host sync).

Each variant runs a few timed steps after a warm-up epoch of 2 steps; seconds per epoch and the
20-epoch time are projections from the measured seconds per step (N / batch steps per epoch);
the warm-up epoch minus 2 steps is reported apart as the compile (and first-call) time. Prints
the figures and the throughput ratio. CPU target: ours >= 3x the straightforward loop.

    python scripts/bench_train.py                 # 400,000 samples (1.6 GB of features)
    python scripts/bench_train.py --samples 50000 --steps 4
    python scripts/bench_train.py --device cuda --compile off,default,reduce-overhead --json t.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def synthetic_set(n: int, dim: int = 2048, seed: int = 0):
    from ihmr.pose.train_data import TrainSet

    g = torch.Generator().manual_seed(seed)
    feats = torch.rand(n, dim, generator=g).to(torch.float16)
    from ihmr.geometry import axis_angle_to_matrix

    rot = axis_angle_to_matrix(torch.randn(n, 24, 3, generator=g) * 0.2).reshape(n, 216)
    conf = lambda k: torch.ones(n, k, 1)  # noqa: E731
    labels = {
        "pose": rot,
        "betas": torch.randn(n, 10, generator=g),
        "valid": torch.ones(n),
        "kp3d": torch.cat([torch.randn(n, 24, 3, generator=g) * 0.3, conf(24)], -1),
        "has3d": torch.ones(n),
        "kp2d": torch.cat([torch.rand(n, 49, 2, generator=g) * 2 - 1, conf(49)], -1),
    }
    return TrainSet(feats, labels, [0], [n], [1.0], ["bench"], "bench")


def bench_ours(
    train_set,
    body,
    batch: int,
    steps: int,
    device: torch.device,
    compile_mode: str,
    backend: str = "inductor",
):
    """(seconds per step, seconds of the 2-step warm-up epoch) of the real trainer loop."""
    from ihmr.models.hmr import HMRHead
    from ihmr.pose.config import PoseTrainConfig
    from ihmr.pose.train import TrainStep, _run_epoch, build_loss, compile_step
    from ihmr.runs import DistInfo, RunDir

    cfg = PoseTrainConfig()
    cfg.loss.kind, cfg.optim.batch_size, cfg.progress, cfg.log_every = "bmc", batch, False, 10**9
    data = train_set.to(device)
    torch.manual_seed(0)
    head = HMRHead(train_set.feature_dim, body.mean_params).to(device)
    loss = build_loss(cfg, True).to(device)
    opt = torch.optim.Adam(
        [
            {"params": list(head.parameters()), "lr": 1e-4},
            {"params": [loss.criterion.noise_sigma], "lr": 1e-2},
        ],
        **({"fused": True} if device.type == "cuda" else {"foreach": True}),
    )
    step = TrainStep(head, body, loss, amp=device.type == "cuda")
    if compile_mode != "off":
        torch._dynamo.reset()  # every variant pays its own compilation
        step = compile_step(step, compile_mode, backend=backend)
    run = RunDir(tempfile.mkdtemp(), main=True)
    times = []
    for n_steps in (2, steps):  # warm-up epoch (lazy init, compilation), then the timed one
        cfg.data.samples_per_epoch = n_steps * batch
        t0 = time.perf_counter()
        _run_epoch(cfg, 1, step, head, loss, opt, data, True, device, DistInfo(), run)
        times.append((time.perf_counter() - t0) / n_steps)
    return times[-1], 2 * times[0]


def bench_straightforward(train_set, body, batch: int, steps: int, device: torch.device):
    """Seconds per step of the plain loop: DataLoader over CPU arrays, full body forward."""
    from torch.utils.data import DataLoader, TensorDataset

    from ihmr.models.hmr import HMRHead
    from ihmr.pose.config import PoseTrainConfig
    from ihmr.pose.train import build_loss

    cfg = PoseTrainConfig()
    cfg.loss.kind = "bmc"
    keys = list(train_set.labels)
    ds = TensorDataset(train_set.features, *[train_set.labels[k] for k in keys])
    loader = DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True)
    torch.manual_seed(0)
    head = HMRHead(train_set.feature_dim, body.mean_params).to(device)
    loss = build_loss(cfg, True).to(device)
    opt = torch.optim.Adam(
        [
            {"params": list(head.parameters()), "lr": 1e-4},
            {"params": [loss.criterion.noise_sigma], "lr": 1e-2},
        ]
    )
    t0, done = None, 0
    for i, (f, *labs) in enumerate(loader):
        if i == 1:
            t0 = time.perf_counter()  # the first step is a warm-up
        f = f.to(device).float()
        batch_d = {k: v.to(device) for k, v in zip(keys, labs, strict=True)}
        out = head(f)
        joints49 = body(out.betas, out.rotmat).joints49  # full forward: vertices are built
        terms = loss(out.rotmat, out.betas, out.cam, joints49, batch_d)
        opt.zero_grad()
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 35.0)
        opt.step()
        terms["total"].item()  # host sync every step (logging)
        done = i
        if i == steps:
            break
    return (time.perf_counter() - t0) / done


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--samples", type=int, default=400_000, help="cached features (default 400,000)"
    )
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument(
        "--compile",
        default="auto",
        help="comma list of off, default, "
        "reduce-overhead (auto: reduce-overhead on CUDA, off on CPU)",
    )
    ap.add_argument(
        "--backend",
        default="inductor",
        help="torch.compile backend (aot_eager: "
        "the same graphs without code generation, for a quick CPU dry run)",
    )
    ap.add_argument("--batches", default="1024,128", help="batch sizes of the trainer")
    ap.add_argument(
        "--baseline",
        default="128,1024",
        help="batch sizes of the straightforward loop ('' to skip it)",
    )
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the projection")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    from ihmr.body import load_body
    from ihmr.pose.train import warm_body
    from ihmr.runs import resolve_device

    device = resolve_device(args.device)
    modes = (
        [m for m in args.compile.split(",") if m]
        if args.compile != "auto"
        else ["reduce-overhead" if device.type == "cuda" else "off"]
    )
    body = load_body("neutral").to(device)
    warm_body(body, device)
    t = time.perf_counter()
    train_set = synthetic_set(args.samples)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {device} ({name}; {torch.get_num_threads()} threads), {args.samples:,} features "
        f"{train_set.feature_bytes() / 2**30:.2f} GiB, compile={','.join(modes)} "
        f"(data {time.perf_counter() - t:.1f} s)"
    )
    print(
        f"{'variant':<42} {'batch':>5} {'ms/step':>9} {'s/epoch':>9} "
        f"{f'{args.epochs} epochs':>11} {'samples/s':>10} {'compile s':>9}"
    )
    rows = []
    plan = [("ours", m, int(b)) for m in modes for b in args.batches.split(",") if b]
    plan += [("straightforward", "off", int(b)) for b in args.baseline.split(",") if b]
    for variant, mode, batch in plan:
        warm = None
        if variant == "ours":
            sec, warm = bench_ours(train_set, body, batch, args.steps, device, mode, args.backend)
        else:
            sec = bench_straightforward(train_set, body, batch, args.steps, device)
        per_epoch = sec * (args.samples // batch)
        rows.append(
            {
                "variant": variant,
                "compile": mode,
                "batch": batch,
                "ms_per_step": sec * 1e3,
                "s_per_epoch": per_epoch,
                "projected_s": per_epoch * args.epochs,
                "samples_per_s": batch / sec,
                "compile_s": None if warm is None else max(0.0, warm - 2 * sec),
            }
        )
        label = (
            f"ours (resident, joints-only, compile {mode})"
            if variant == "ours"
            else "straightforward (DataLoader, full body)"
        )
        comp = "" if warm is None else f"{rows[-1]['compile_s']:9.1f}"
        print(
            f"{label:<42} {batch:>5} {sec * 1e3:>9.1f} {per_epoch:>9.1f} "
            f"{per_epoch * args.epochs:>10.0f}s {batch / sec:>10.0f} {comp}"
        )
    ratios = {}
    base = {r["batch"]: r for r in rows if r["variant"] == "straightforward"}
    for r in rows:
        if r["variant"] == "ours" and r["batch"] in base:
            ratio = r["samples_per_s"] / base[r["batch"]]["samples_per_s"]
            ratios[f"{r['compile']}@{r['batch']}"] = ratio
            print(
                f"throughput ratio ours (compile {r['compile']}) / straightforward at batch "
                f"{r['batch']}: {ratio:.2f}x"
            )
    if args.json is not None:
        out = {
            "device": str(device),
            "device_name": name,
            "samples": args.samples,
            "steps": args.steps,
            "epochs": args.epochs,
            "backend": args.backend,
            "threads": torch.get_num_threads(),
            "rows": rows,
            "ratios": ratios,
        }
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
