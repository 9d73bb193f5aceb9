"""Age benchmark speed: stage-1 training and feature extraction images/s (ResNet-50, 224 x 224), and
stage-2 (RRT) retraining time on 191,509 generated cached 2048-d features (IMDB-WIKI-DIR's train
size) for 30 epochs with BMC, through the same loop as `ihmr age train` (target: < 60 s on 2 CPU
cores). Prints figures and ratios; nothing is asserted.

    python scripts/bench_age.py [--device cpu|cuda] [--epochs 30] [--n 191509] [--batch 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def images_per_s(device: str, batch: int, steps: int, train: bool) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process)."""
    from ihmr.age.model import AgeRegressor

    model = AgeRegressor("resnet50").to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.rand(batch, device=device) * 90
    model.train(train)

    def step():
        if train:
            loss = torch.nn.functional.l1_loss(model(x).reshape(-1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                model.features(x)

    step()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t), batch * steps / (time.process_time() - c)


def rrt_time(device: str, n: int, epochs: int, batch: int, loss: str) -> tuple[float, int]:
    """Seconds for ``epochs`` of stage 2 on ``n`` float16 features, with per-epoch validation on
    11,022 features, run logging and checkpoints, as `ihmr age train` does."""
    from ihmr.age.config import AgeConfig
    from ihmr.age.criteria import build_criterion
    from ihmr.age.model import AgeRegressor, freeze_for_rrt
    from ihmr.age.train import _epoch_loop, _payload, feature_batches, predict_head
    from ihmr.losses import noise_parameters
    from ihmr.runs import RunDir

    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    ages = np.clip(rng.normal(33, 12, n), 0, 99).round()
    tx = torch.empty(n, 2048, dtype=torch.float16)
    for i in range(0, n, 16384):  # chunks keep the float32 temporaries small
        tx[i : i + 16384] = torch.rand(min(16384, n - i), 2048, generator=g).half()
    ty = torch.as_tensor(ages, dtype=torch.float32)
    vx, vy = tx[:11022].clone(), ages[:11022]
    tx, ty = tx.to(device), ty.to(device)
    cfg = AgeConfig(stage="rrt", device=device, progress=False, tensorboard=False)
    cfg.loss.kind, cfg.optim.epochs, cfg.optim.batch_size = loss, epochs, batch
    model = AgeRegressor("small").to(device)  # the head sees 2048-d features: ResNet-50's linear
    model.linear = torch.nn.Linear(2048, 1).to(device)
    model.feature_dim = 2048
    freeze_for_rrt(model)
    crit = build_criterion(cfg.loss, ages, (0, 120)).to(device)
    opt = torch.optim.Adam(
        [
            {"params": list(model.linear.parameters()), "lr": 1e-4},
            {"params": noise_parameters(crit), "lr": 1e-2},
        ]
    )
    shuffle = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp), main=True)
        t, c = time.perf_counter(), time.process_time()
        _epoch_loop(
            cfg,
            run,
            epochs=epochs,
            start=0,
            best={},
            objects={"linear": model.linear, "criterion": crit, "optimizer": opt},
            generators={"shuffle": shuffle},
            batches=feature_batches(tx, ty, batch, shuffle),
            n_batches=-(-n // batch),
            step_fn=lambda b: crit(model.linear(b[0]), b[1]),
            optimizer=opt,
            evaluate=lambda: (predict_head(model.linear, vx, device), vy),
            train_ages=ages,
            payload=_payload(cfg, model, ages, "rrt", crit),
            sigma=lambda: crit.sigma,
            log=lambda s: None,
        )
        return time.perf_counter() - t, time.process_time() - c, -(-n // batch) * epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=191509)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--loss", default="bmc")
    ap.add_argument("--image-batch", type=int, default=8)
    ap.add_argument("--image-steps", type=int, default=2)
    ap.add_argument("--skip-images", action="store_true")
    a = ap.parse_args()
    print(f"device {a.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    if not a.skip_images:
        tr, trc = images_per_s(a.device, a.image_batch, a.image_steps, True)
        fe, fec = images_per_s(a.device, a.image_batch * 4, a.image_steps, False)
        print(
            f"stage 1 training (ResNet-50, 224 px, batch {a.image_batch}): {tr:.2f} images/s "
            f"({trc:.2f} per CPU-second) -> one IMDB-WIKI-DIR epoch (191,509 images) "
            f"{191509 / tr / 3600:.1f} h"
        )
        print(
            f"feature extraction (batch {a.image_batch * 4}): {fe:.2f} images/s "
            f"({fec:.2f} per CPU-second; {fe / tr:.1f}x training) -> all 213,553 images "
            f"{213553 / fe / 3600:.1f} h"
        )
    sec, cpu, steps = rrt_time(a.device, a.n, a.epochs, a.batch, a.loss)
    print(
        f"stage 2 ({a.loss}, {a.n:,} cached float16 features, batch {a.batch}, {a.epochs} epochs, "
        f"{steps:,} steps, val every epoch): {sec:.1f} s wall ({1e3 * sec / steps:.2f} ms/step), "
        f"{cpu:.1f} s CPU time of this process"
    )
    if (a.n, a.epochs) == (191509, 30):
        print(
            f"target < 60 s: {'met' if sec < 60 else 'NOT met'} on wall time ({60 / sec:.2f}x), "
            f"{'met' if cpu < 60 else 'NOT met'} on CPU time ({60 / cpu:.2f}x; wall time on an "
            "idle machine is at most the CPU time when it runs one thread)"
        )


if __name__ == "__main__":
    main()
