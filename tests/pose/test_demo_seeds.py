"""scripts/demo_seeds.py on a tiny demo: its tables hold numpy's statistics of the runs' metrics."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import yaml

from ihmr.pose.demo_data import DemoConfig, make_demo

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_seeds.py"


def test_seed_tables_are_the_statistics_of_the_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("demo_seeds", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    make_demo(tmp_path / "data", DemoConfig(n_train=200, n_test=40, feature_dim=160))
    out = tmp_path / "runs"
    table = mod.main(
        [
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(out),
            "--seeds",
            "3",
            "--losses",
            "mse,gai_kp",
            "--set",
            "optim.epochs=1",
            "--set",
            "data.samples_per_epoch=32",
            "--set",
            "optim.batch_size=16",
            "--set",
            "progress=false",
        ]
    )
    seeds = [0, 1, 2]
    # per-seed values straight from each run's own evaluation, not from the script's summary
    runs = {
        k: [json.loads((out / f"seed{s}" / k / "eval" / "metrics.json").read_text()) for s in seeds]
        for k in ("mse", "gai_kp")
    }
    assert yaml.safe_load((out / "seed1" / "gai_kp" / "config.yaml").read_text())["seed"] == 1
    means, paired = table.split("Paired difference")
    for m in mod.METRICS:
        for part, label in mod.PARTS:
            row = re.search(rf"^\| {re.escape(m)} {label} \| (.*) \|$", means, re.M).group(1)
            for k, cell in zip(("mse", "gai_kp"), row.split("|"), strict=True):
                v = np.array([r[m][part] for r in runs[k]])
                assert cell.strip() == f"{v.mean():.1f} ± {v.std(ddof=1):.1f}", (m, part, k)
            d = np.array(
                [g[m][part] - s[m][part] for g, s in zip(runs["gai_kp"], runs["mse"], strict=True)]
            )
            cell = re.search(rf"^\| {re.escape(m)} {label} \| (.*) \|$", paired, re.M).group(1)
            text = f"{d.mean():+.1f} ± {d.std(ddof=1) / np.sqrt(3):.1f} ({(d < 0).sum()}/3)"
            separated = (d < 0).sum() >= 2 and d.mean() < -2 * d.std(ddof=1) / np.sqrt(3)
            assert cell.strip() == (f"**{text}**" if separated else text), (m, part)
    for s in seeds:
        row = re.search(rf"^\| {s} \| ([\d.]+) \| ([\d.]+) \|", table, re.M)
        assert [float(x) for x in row.groups()] == [
            round(runs[k][s]["bMPVPE"]["tail5"], 1) for k in ("mse", "gai_kp")
        ]
    assert len({r["bMPVPE"]["tail5"] for r in runs["mse"]}) == 3  # the seeds differ


def test_paired_statistics_by_hand():
    spec = importlib.util.spec_from_file_location("demo_seeds", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    st = mod.paired(np.array([1.0, 2, 3, 4]), np.array([2.0, 3, 5, 4]))
    # differences -1, -1, -2, 0: mean -1, std sqrt(2/3), se sqrt(2/3)/2
    assert st["mean"] == -1.0 and st["below"] == 3 and abs(st["se"] - np.sqrt(2 / 3) / 2) < 1e-12
    assert st["separated"]  # 3 of 4 below, -1 < -2 * 0.408
    assert not mod.paired(np.array([1.0, 2, 3, 6]), np.array([2.0, 3, 5, 4]))["separated"]


def test_summary_table_and_run_seconds(tmp_path):
    """The README summary: one row per (part, thread count), the paired bMPVPE difference worked
    out by hand; training seconds summed from a run's metrics.csv."""
    spec = importlib.util.spec_from_file_location("demo_seeds", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def res(values):
        return {
            s: {"bMPVPE": {"all": v, "tail10": v + 10, "tail5": v + 20}}
            for s, v in enumerate(values)
        }

    studies = {
        1: {"mse": res([10.0, 12, 11]), "gai_kp": res([8.0, 9, 10])},
        2: {"mse": res([10.0, 12, 11]), "gai_kp": res([11.0, 12, 10])},
    }
    text = mod.summary_table(studies)
    # threads 1: differences -2, -3, -1: mean -2, se 1/sqrt(3) = 0.577, 3/3 below, separated
    assert "| all | 1 | **-2.0 ± 0.6 (3/3)** |" in text
    # threads 2: differences +1, 0, -1: mean 0, se 0.577, 1/3 below
    assert "| tail 5% | 2 | +0.0 ± 0.6 (1/3) |" in text
    assert text.count("\n") == 2 + 3 * 2
    (tmp_path / "metrics.csv").write_text("epoch,seconds\n1,1.25\n2,2.5\n")
    assert mod.run_seconds(tmp_path) == 3.8  # 3.75 rounded to one decimal
    assert mod.run_seconds(tmp_path / "none") is None
