"""scripts/device_check.py: one line and exit 0 without a device; the dry run runs every step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device_check.py"


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


@pytest.mark.skipif(
    torch.cuda.is_available() or Path("/dev/nvidia0").exists(),
    reason="this machine has a CUDA device",
)
def test_without_a_device_one_line_exit_0_nothing_written(tmp_path):
    res = _run(str(tmp_path / "out"), timeout=60)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no CUDA device" in lines[0] and "nothing measured" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_the_report(tmp_path):
    res = _run(str(tmp_path / "out"), "--dry-run", timeout=600)
    report = json.loads((tmp_path / "out" / "device_check.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == [
        "bench_train",
        "bench_eval",
        "bench_losses",
        "demo_data",
        "torchrun_train",
    ]
    bad = {k: s["output_tail"][-5:] for k, s in steps.items() if s["rc"] != 0}
    assert not bad and res.returncode == 0, (bad, res.stdout[-2000:])
    fig = steps["bench_train"]["figures"]
    got = {(r["variant"], r["compile"]) for r in fig["rows"]}
    assert got == {
        ("ours", "off"),
        ("ours", "default"),
        ("ours", "reduce-overhead"),
        ("straightforward", "off"),
    }
    assert all(r["ms_per_step"] > 0 for r in fig["rows"])
    assert set(fig["ratios"]) == {"off@16", "default@16", "reduce-overhead@16"}
    train = "\n".join(steps["torchrun_train"]["output_tail"])
    assert "process group gloo: all_reduce over 1 process(es) gave 1.0" in train
    assert "trained bmc for 1 epochs" in train
    metrics = (tmp_path / "out" / "train" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1 and json.loads(metrics[0])["steps"] == 4  # 128 draws / batch 32
    assert "GAI forward+backward" in "\n".join(steps["bench_losses"]["output_tail"])
    assert "full evaluation" in "\n".join(steps["bench_eval"]["output_tail"])
    md = (tmp_path / "out" / "device_check.md").read_text()
    assert "| bench_train | 0 |" in md and "| torchrun_train | 0 |" in md
