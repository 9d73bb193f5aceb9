"""scripts/demo_seeds.py on a tiny demo: its table holds numpy's mean/std of the runs' metrics."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import yaml

from ihmr.pose.demo_data import DemoConfig, make_demo

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_seeds.py"


def test_seed_table_is_mean_std_of_the_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("demo_seeds", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    make_demo(tmp_path / "data", DemoConfig(n_train=200, n_test=40, feature_dim=32))
    out = tmp_path / "runs"
    table = mod.main(["--data", str(tmp_path / "data"), "--out", str(out), "--seeds", "3",
                      "--set", "optim.epochs=1", "--set", "data.samples_per_epoch=32",
                      "--set", "optim.batch_size=16", "--set", "progress=false"])
    seeds = [0, 1, 2]
    # per-seed values straight from each run's own evaluation, not from the script's summary
    runs = {k: [json.loads((out / f"seed{s}" / k / "eval" / "metrics.json").read_text())
                for s in seeds] for k in ("mse", "gai")}
    assert yaml.safe_load((out / "seed1" / "gai" / "config.yaml").read_text())["seed"] == 1
    for m in mod.METRICS:
        for part, label in mod.PARTS:
            row = re.search(rf"^\| {re.escape(m)} {label} \| (.*) \|$", table, re.M).group(1)
            cells = [c.strip() for c in row.split("|")]
            for k, cell in zip(("mse", "gai"), cells):
                v = np.array([r[m][part] for r in runs[k]])
                assert cell == f"{v.mean():.2f} ± {v.std(ddof=1):.2f}", (m, part, k)
            wins = sum(g[m][part] < s[m][part] for g, s in zip(runs["gai"], runs["mse"]))
            assert cells[2] == f"{wins} / 3"
    for s in seeds:
        row = re.search(rf"^\| {s} \| ([\d.]+) \| ([\d.]+) \|", table, re.M)
        assert [float(x) for x in row.groups()] == [
            round(runs[k][s]["bMPVPE"]["tail5"], 2) for k in ("mse", "gai")]
    assert len({r["bMPVPE"]["tail5"] for r in runs["mse"]}) == 3  # the seeds differ
