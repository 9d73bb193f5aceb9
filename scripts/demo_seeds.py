"""Seed study of the IHMR demo: train each pose loss for several seeds, report mean ± std.

    python scripts/demo_seeds.py                                   # 3 seeds x (mse, gai)
    python scripts/demo_seeds.py --losses mse,gai,bmc --seeds 5 --set optim.epochs=12

Use one ``--out`` per setting: finished runs are reused as they are.

Every run is ``ihmr demo`` (:func:`ihmr.pose.demo.run_demo`: same data, prior, split and configs)
with ``seed=<s>`` added to the overrides, in ``<out>/seed<s>/<loss>``; finished runs are reused.
Prints (and writes to ``<out>/seeds.md``, ``<out>/seeds.json``) one table of mean ± std over
the seeds (std with ddof=1) per balanced metric, the count of seeds in which GAI is below MSE, and
the per-seed bMPVPE tail 5% with each run's training + evaluation seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METRICS = ("bMPVPE", "bMPJPE", "bPA-MPJPE")
PARTS = (("all", "all"), ("tail10", "tail 10%"), ("tail5", "tail 5%"))


def seed_table(results: dict[str, dict[int, dict]], seconds: dict[str, dict[int, float]]) -> str:
    """Markdown tables from ``results[loss][seed]`` (eval metrics) and run seconds."""
    losses, seeds = list(results), sorted(next(iter(results.values())))
    vs = "gai" in results and "mse" in results
    head = " | ".join(f"{k.upper()} mean ± std" for k in losses)
    lines = [f"| metric (mm), {len(seeds)} seeds | {head} |" + (" GAI < MSE (seeds) |" * vs),
             "|---|" + "---:|" * (len(losses) + vs)]
    for m in METRICS:
        for part, label in PARTS:
            v = {k: np.array([results[k][s][m][part] for s in seeds]) for k in losses}
            cells = [f"{v[k].mean():.2f} ± {v[k].std(ddof=1) if len(seeds) > 1 else 0:.2f}"
                     for k in losses]
            if vs:
                cells.append(f"{int((v['gai'] < v['mse']).sum())} / {len(seeds)}")
            lines.append(f"| {m} {label} | " + " | ".join(cells) + " |")
    lines += ["", "| seed | " + " | ".join(f"{k.upper()} bMPVPE tail 5%" for k in losses) +
              " | " + " | ".join(f"{k.upper()} seconds" for k in losses) + " |",
              "|---:|" + "---:|" * 2 * len(losses)]
    for s in seeds:
        lines.append(f"| {s} | " + " | ".join(f"{results[k][s]['bMPVPE']['tail5']:.2f}"
                                             for k in losses) + " | " +
                     " | ".join(str(seconds[k].get(s, "reused")) for k in losses) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0 .. N-1 from --first)")
    p.add_argument("--first", type=int, default=0, help="first seed")
    p.add_argument("--losses", default="mse,gai", help="pose losses, comma-separated")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="config override for every run, e.g. optim.epochs=12 (repeatable)")
    p.add_argument("--data", default="data/demo", help="demo data folder (generated if absent)")
    p.add_argument("--out", default="runs/demo_seeds", help="folder of the runs and tables")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    a = p.parse_args(argv)

    import torch

    from ihmr.pose.demo import run_demo

    torch.set_num_threads(a.threads)
    losses = [k.strip() for k in a.losses.split(",") if k.strip()]
    results: dict[str, dict[int, dict]] = {k: {} for k in losses}
    seconds: dict[str, dict[int, float]] = {k: {} for k in losses}
    for s in range(a.first, a.first + a.seeds):
        res = run_demo(a.data, Path(a.out) / f"seed{s}", losses, [*a.sets, f"seed={s}"],
                       render=False)
        for k in losses:
            results[k][s] = res["metrics"][k]
            if k in res["train_seconds"]:
                seconds[k][s] = res["train_seconds"][k]
    table = seed_table(results, seconds)
    out = Path(a.out)
    (out / "seeds.md").write_text(table)
    (out / "seeds.json").write_text(json.dumps({"sets": a.sets, "metrics": results,
                                                "seconds": seconds}, indent=1))
    print(table)
    return table


if __name__ == "__main__":
    main()
