"""Seed study of the IHMR demo: every run of ``ihmr demo`` for several seeds, paired statistics.

    python scripts/demo_seeds.py                                  # seeds 0-5, all five runs
    python scripts/demo_seeds.py --threads 1,2                    # the README's table
    python scripts/demo_seeds.py --seeds 3 --threads 2 --out runs/demo_seeds_t2

Every seed is ``ihmr demo`` (:func:`ihmr.pose.demo.run_demo`: same data, prior, split and
configs) with ``seed=<s>`` added to the overrides, in ``<out>/seed<s>/<run>``; finished runs are
reused, so an interrupted study continues where it stopped. The seed sets the head's
initialisation, dropout and sampling order; the data stay fixed.

Prints (and writes ``<out>/seeds.md``, ``<out>/seeds.json``) per balanced metric the mean ± std
over the seeds (ddof 1) of every run, and for every Balanced MSE run its paired difference with
MSE: mean ± standard error, the number of seeds in which it is below MSE, and whether it is
*separated*: below MSE in all but at most one seed and the mean difference below -2 standard
errors. Training seconds come from each run's ``metrics.csv`` (reused runs included).

With several thread counts (``--threads 1,2``) each goes to ``<out>/threads<T>/`` and a summary
of the paired bMPVPE differences for every thread count (the README's table) is printed last and
written to ``<out>/summary.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METRICS = ("bMPVPE", "bMPJPE", "bPA-MPJPE")
PARTS = (("all", "all"), ("tail10", "tail 10%"), ("tail5", "tail 5%"))


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired difference a - b over seeds: mean, standard error, count below, separated."""
    d = a - b
    n = len(d)
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    below = int((d < 0).sum())
    return {
        "mean": float(d.mean()),
        "se": se,
        "below": below,
        "n": n,
        "separated": bool(n > 1 and below >= n - 1 and d.mean() < -2 * se),
    }


def seed_table(results: dict[str, dict[int, dict]], seconds: dict[str, dict[int, float]]) -> str:
    """Markdown tables from ``results[run][seed]`` (eval metrics) and run seconds."""
    from ihmr.pose.demo import RUN_LABELS

    runs, seeds = list(results), sorted(next(iter(results.values())))
    label = lambda k: RUN_LABELS.get(k, k)  # noqa: E731
    balanced = [k for k in runs if k != "mse"]
    lines = [
        f"| metric (mm), seeds {seeds[0]}-{seeds[-1]} | "
        + " | ".join(label(k) for k in runs)
        + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for m in METRICS:
        for part, name in PARTS:
            cells = []
            for k in runs:
                v = np.array([results[k][s][m][part] for s in seeds])
                cells.append(f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0:.1f}")
            lines.append(f"| {m} {name} | " + " | ".join(cells) + " |")
    if "mse" in results and balanced:
        lines += [
            "",
            f"Paired difference with MSE (mm, mean ± standard error over {len(seeds)} "
            "seeds; seeds below MSE; **separated** = below in all but at most one seed "
            "and mean < -2 SE):",
            "",
            "| metric | " + " | ".join(label(k) for k in balanced) + " |",
            "|---|" + "---:|" * len(balanced),
        ]
        for m in METRICS:
            for part, name in PARTS:
                base = np.array([results["mse"][s][m][part] for s in seeds])
                cells = []
                for k in balanced:
                    st = paired(np.array([results[k][s][m][part] for s in seeds]), base)
                    txt = f"{st['mean']:+.1f} ± {st['se']:.1f} ({st['below']}/{st['n']})"
                    cells.append(f"**{txt}**" if st["separated"] else txt)
                lines.append(f"| {m} {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| seed | "
        + " | ".join(f"{label(k)} bMPVPE tail 5%" for k in runs)
        + " | "
        + " | ".join(f"{label(k)} s" for k in runs)
        + " |",
        "|---:|" + "---:|" * 2 * len(runs),
    ]
    for s in seeds:
        lines.append(
            f"| {s} | "
            + " | ".join(f"{results[k][s]['bMPVPE']['tail5']:.1f}" for k in runs)
            + " | "
            + " | ".join(str(seconds[k].get(s, "reused")) for k in runs)
            + " |"
        )
    return "\n".join(lines) + "\n"


def summary_table(studies: dict[int, dict[str, dict[int, dict]]]) -> str:
    """bMPVPE paired differences with MSE, one row per (part, thread count)."""
    from ihmr.pose.demo import RUN_LABELS

    first = next(iter(studies.values()))
    balanced = [k for k in first if k != "mse"]
    seeds = sorted(first["mse"])
    lines = [
        f"| bMPVPE, Balanced MSE - MSE (mm), seeds {seeds[0]}-{seeds[-1]} | threads | "
        + " | ".join(RUN_LABELS.get(k, k) for k in balanced)
        + " |",
        "|---|---:|" + "---:|" * len(balanced),
    ]
    for part, name in PARTS:
        for threads, results in studies.items():
            base = np.array([results["mse"][s]["bMPVPE"][part] for s in seeds])
            cells = []
            for k in balanced:
                st = paired(np.array([results[k][s]["bMPVPE"][part] for s in seeds]), base)
                txt = f"{st['mean']:+.1f} ± {st['se']:.1f} ({st['below']}/{st['n']})"
                cells.append(f"**{txt}**" if st["separated"] else txt)
            lines.append(f"| {name} | {threads} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_seconds(folder: Path) -> float | None:
    """Training seconds of a finished run, summed from its metrics.csv."""
    import csv

    path = folder / "metrics.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return round(sum(float(r["seconds"]) for r in csv.DictReader(f)), 1)


def main(argv: list[str] | None = None) -> str:
    from ihmr.pose.demo import DEMO_KINDS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=6, help="number of seeds (from --first)")
    p.add_argument("--first", type=int, default=0, help="first seed")
    p.add_argument("--losses", default=",".join(DEMO_KINDS), help="demo runs, comma-separated")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        help="config override for every run, e.g. optim.epochs=12 (repeatable)",
    )
    p.add_argument("--data", default="data/demo", help="demo data folder (generated if absent)")
    p.add_argument("--out", default="runs/demo_seeds", help="folder of the runs and tables")
    p.add_argument("--threads", default="1", help="torch threads, or several: 1,2")
    a = p.parse_args(argv)

    import torch

    from ihmr.pose.demo import run_demo

    counts = [int(t) for t in str(a.threads).split(",") if t.strip()]
    runs = [k.strip() for k in a.losses.split(",") if k.strip()]
    studies, tables = {}, []
    for threads in counts:
        out = Path(a.out) if len(counts) == 1 else Path(a.out) / f"threads{threads}"
        torch.set_num_threads(threads)
        results: dict[str, dict[int, dict]] = {k: {} for k in runs}
        seconds: dict[str, dict[int, float]] = {k: {} for k in runs}
        for s in range(a.first, a.first + a.seeds):
            res = run_demo(a.data, out / f"seed{s}", runs, [*a.sets, f"seed={s}"], render=False)
            for k in runs:
                results[k][s] = res["metrics"][k]
                sec = run_seconds(Path(res["folders"][k]))
                if sec is not None:
                    seconds[k][s] = sec
        table = seed_table(results, seconds)
        (out / "seeds.md").write_text(f"threads: {threads}; overrides: {a.sets}\n\n" + table)
        (out / "seeds.json").write_text(
            json.dumps(
                {"sets": a.sets, "threads": threads, "metrics": results, "seconds": seconds},
                indent=1,
            )
        )
        print(f"threads: {threads}\n\n{table}")
        studies[threads] = results
        tables.append(table)
    if len(counts) > 1 and "mse" in runs and len(runs) > 1:
        summary = summary_table(studies)
        (Path(a.out) / "summary.md").write_text(summary)
        print(summary)
        tables.append(summary)
    return "\n".join(tables)


if __name__ == "__main__":
    main()
