"""Speed of ``ihmr predict``'s parts: backbone and head images/s on 224 x 224 crops (CPU, and GPU
when there is one), SPIN crop time, and rendering time per image (front overlay + side view).

    python scripts/bench_predict.py [--batch 16] [--repeats 3] [--threads N]

A randomly initialised HMR is used: speed does not depend on the weights. Prints a table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _timed(fn, repeats: int, sync=lambda: None) -> float:
    fn()  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def bench_model(device: torch.device, batch: int, repeats: int, amp: bool = False) -> dict:
    from ihmr.models.hmr import HMR

    model = HMR().eval().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device=device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    ctx = (lambda: torch.autocast("cuda", torch.bfloat16)) if amp else torch.inference_mode
    with torch.inference_mode():
        feats = model.backbone.features(x)

        def backbone():
            with ctx():
                model.backbone.features(x)

        def head():
            model.head(feats)

        tb, th = _timed(backbone, repeats, sync), _timed(head, repeats, sync)
    return {"backbone": batch / tb, "head": batch / th, "both": batch / (tb + th)}


def bench_crop(repeats: int) -> float:
    from ihmr.pose.crop import crop_image, normalise

    img = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    return _timed(lambda: normalise(crop_image(img, (640, 360), 3.0)), repeats * 20) * 1e3


def bench_render(repeats: int) -> tuple[float, float] | None:
    from ihmr.render import render_available

    if not render_available():
        return None
    from ihmr.body import load_body
    from ihmr.pose.predict import render_people
    from ihmr.render.mesh import MeshRenderer

    body = load_body("neutral")
    rot = torch.eye(3).expand(1, 24, 3, 3).clone()
    rot[0, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    v = body(torch.zeros(1, 10), rot).vertices.numpy()
    img = np.full((480, 640, 3), 128, np.uint8)
    renderer = MeshRenderer()
    cams, centers, scales = np.array([[0.9, 0, 0]]), np.array([[320.0, 240.0]]), np.array([2.2])
    one = _timed(
        lambda: render_people(renderer, img, v, body.faces, cams, centers, scales), repeats
    )
    three = _timed(
        lambda: render_people(
            renderer,
            img,
            np.repeat(v, 3, 0),
            body.faces,
            np.repeat(cams, 3, 0),
            centers.repeat(3, 0) + np.array([[-150, 0], [0, 0], [150, 0]]),
            scales.repeat(3),
        ),
        repeats,
    )
    return one * 1e3, three * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU model timing")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}")
    rows = []
    if not args.no_cpu:
        rows.append(("cpu fp32", bench_model(torch.device("cpu"), args.batch, args.repeats)))
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        name = torch.cuda.get_device_name(dev)
        rows.append((f"{name} fp32", bench_model(dev, args.batch, args.repeats)))
        rows.append((f"{name} bf16 autocast", bench_model(dev, args.batch, args.repeats, True)))
        rows.append((f"{name} fp32 batch 128", bench_model(dev, 128, args.repeats)))
    print("\n| device | backbone img/s | head img/s | backbone + head img/s |")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['backbone']:.1f} | {r['head']:.0f} | {r['both']:.1f} |")
    if not args.no_cpu and len(rows) > 1:
        ratio = rows[1][1]["backbone"] / rows[0][1]["backbone"]
        print(f"\nGPU / CPU backbone speed-up: {ratio:.1f}x")
    print(f"\nSPIN crop + normalise of a 1280 x 720 image: {bench_crop(args.repeats):.2f} ms")
    r = bench_render(args.repeats)
    if r is None:
        print("rendering: no offscreen OpenGL backend")
    else:
        print(
            f"rendering 640 x 480, front + side: 1 person {r[0]:.0f} ms, 3 people {r[1]:.0f} ms "
            f"per image ({r[1] / r[0]:.1f}x)"
        )


if __name__ == "__main__":
    main()
