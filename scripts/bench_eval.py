"""Benchmark ``ihmr eval`` from cached features at the 3DPW test size (35,515 samples).

One full evaluation: HMR head forward on the features, body forward for the predictions, the
gendered ground truth and the mean mesh, the 100-region split built in the same pass, the three
per-sample metrics, balanced/tail/plain aggregation and all output files (no renders). Prints the
wall time, a per-stage breakdown on one chunk, and the peak resident memory.
Targets: at most 60 s and 3 GB on 2 CPU cores; under 2 s on a GPU.

    python scripts/bench_eval.py                 # CPU, 35,515 samples
    python scripts/bench_eval.py --device cuda   # GPU figure
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def make_inputs(root: Path, n: int, seed: int = 0):
    """A 3DPW-like test file (moderate random poses, m/f genders) and a float16 feature store."""
    from ihmr.pose.features import write_feature_store
    from ihmr.pose.spin_data import labels_fingerprint

    rng = np.random.default_rng(seed)
    pose = rng.normal(0, 0.25, (n, 72))
    pose[:, :3] = [np.pi, 0, 0] + rng.normal(0, 0.2, (n, 3))
    imgname = np.array([f"img/{i:06d}.jpg" for i in range(n)])
    np.savez(
        root / "3dpw_test.npz",
        imgname=imgname,
        center=np.full((n, 2), 112.0),
        scale=np.ones(n),
        pose=pose,
        shape=rng.normal(0, 1, (n, 10)),
        gender=np.array(["m", "f"])[rng.integers(0, 2, n)],
    )
    feats = np.maximum(rng.normal(0.3, 0.5, (n, 2048)), 0).astype(np.float16)
    write_feature_store(
        root / "features",
        feats,
        dataset="3dpw",
        source_checkpoint="bench",
        labels_fingerprint=labels_fingerprint(imgname),
        source_fingerprint="bench",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=35515)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chunk", type=int, default=None, help="default: 1024 CPU, 4096 GPU")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    chunk = args.chunk or (4096 if args.device.startswith("cuda") else 1024)

    from ihmr.io import torch_save
    from ihmr.models.hmr import HMRHead, head_checkpoint
    from ihmr.pose.jobs import eval_job
    from ihmr.pose.split import GenderedBodies

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        make_inputs(root, args.n)
        bodies = GenderedBodies.load()
        torch.manual_seed(0)
        head = HMRHead(2048, bodies.neutral.mean_params)
        torch_save(root / "head.pt", head_checkpoint(head, features_fingerprint="bench"))
        setup = time.perf_counter() - t
        rss_setup = peak_rss_gb()

        # per-stage timing on one chunk (after a warm-up), to show where the time goes
        from ihmr.pose.features import FeatureStore

        f = FeatureStore(root / "features").tensor(device=args.device)[:chunk]
        head = head.eval().to(args.device)
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        stages = {}
        with torch.no_grad():
            for _rep in range(2):
                sync()
                t = time.perf_counter()
                out = head(f)
                sync()
                stages["head forward"] = time.perf_counter() - t
                sync()
                t = time.perf_counter()
                pred = bodies.neutral(betas=out.betas, pose=out.rotmat)
                sync()
                stages["body forward (vertices)"] = time.perf_counter() - t
                from ihmr.pose.evaluate import per_sample_errors

                sync()
                t = time.perf_counter()
                per_sample_errors(
                    pred.vertices, pred.vertices.flip(0), pred.joints_h36m, pred.joints_h36m.flip(0)
                )
                sync()
                stages["3 metrics"] = time.perf_counter() - t

        t, cpu = time.perf_counter(), time.process_time()
        metrics, info = eval_job(
            root / "3dpw_test.npz",
            root / "out",
            checkpoint=root / "head.pt",
            features=root / "features",
            device=args.device,
            chunk=chunk,
            renders=0,
            bodies=bodies,
        )
        total, cpu = time.perf_counter() - t, time.process_time() - cpu

    name = getattr(bodies.neutral, "name", "body")
    nv = getattr(bodies.neutral, "num_vertices", "?")
    print(
        f"ihmr eval from features: {args.n} samples, body {name} ({nv} vertices), "
        f"device {args.device}, chunk {chunk}, {args.threads} threads"
    )
    print(f"  setup (data, body load)        {setup:7.2f} s")
    for k, v in stages.items():
        print(f"  one chunk: {k:<22} {v:7.3f} s  (x{int(np.ceil(args.n / chunk))} chunks)")
    print(
        f"  full evaluation (all outputs)  {total:7.2f} s   target <= 60 s CPU, < 2 s GPU "
        f"-> {total / 60:.2f}x of the CPU target"
    )
    print(
        f"  CPU time of the full evaluation {cpu:7.2f} s   (wall >> CPU means other jobs "
        "shared the cores)"
    )
    print(
        f"  peak resident memory           {peak_rss_gb():7.2f} GB  "
        f"(after setup {rss_setup:.2f} GB)"
        f"  target <= 3 GB -> {peak_rss_gb() / 3:.2f}x"
    )
    if args.device.startswith("cuda"):
        print(f"  peak GPU memory                {torch.cuda.max_memory_allocated() / 1e9:7.2f} GB")
    print(f"  bMPVPE all {metrics['bMPVPE']['all']:.1f} mm (random head; a sanity figure only)")


if __name__ == "__main__":
    main()
