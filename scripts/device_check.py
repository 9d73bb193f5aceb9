"""One prepared check of the IHMR training and evaluation speed on a CUDA device (at most 8 min).

    python scripts/device_check.py OUT            # on a machine with a CUDA device
    python scripts/device_check.py OUT --dry-run  # the same steps on the CPU at tiny sizes

Steps, each a subprocess with its own time limit (a failing step is recorded, the others run):

1. ``bench_train``: ``scripts/bench_train.py`` on 400,000 cached features at batch 1024 and 128
   with ``compile`` off / default / reduce-overhead (seconds per step and per epoch, projected
   20-epoch time, compile time apart) and the straightforward loop at 128 and 1024 (ratios);
2. ``bench_eval``: ``scripts/bench_eval.py --device cuda`` (3DPW-size evaluation);
3. ``bench_losses``: ``scripts/bench_losses.py --device cuda`` (BMC and GAI on the device);
4. ``demo_data``: ``ihmr demo-data`` (the demo's 20,000 + 2,000 samples);
5. ``torchrun_train``: a one-process ``torchrun`` run of ``ihmr train`` on the demo data for one
   epoch (the demo's BMC config, ``compile: reduce-overhead``) inside an NCCL process group
   (an all-reduce is checked first).

Writes ``OUT/device_check.json`` (every figure, every step's command, exit status, time and
output tail) and ``OUT/device_check.md`` (a short table). First it checks what the steps need:
a CUDA device (none: one line, exit 0, nothing measured), the CUDA build of torch (the project's
set-up pins the CPU build; the line to install the CUDA one is printed, exit 1) and the Python
packages the steps import (missing ones are named with the way to bring them as wheels, exit 1;
see ``scripts/device_wheels.sh``). ``--dry-run`` runs the same steps on the CPU at tiny sizes
(compile through the ``aot_eager`` backend, ``gloo`` instead of NCCL, the trainer uncompiled),
to prove the script itself; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Third-party modules the steps import (besides torch). smplx, trimesh and pyrender are not
# among them: the steps use the bundled open body and render nothing.
NEEDED = {
    "numpy": "numpy",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "typer": "typer",
    "rich": "rich",
    "yaml": "PyYAML",
    "matplotlib": "matplotlib",
}
CUDA_TORCH = (
    "pip install torch --index-url https://download.pytorch.org/whl/cu128  "
    "(or the CUDA build matching the driver: https://pytorch.org/get-started/locally/)"
)
BUDGET_S = 470  # an 8-minute device budget, less the checks and the report


def _device_present() -> str | None:
    """A description of the NVIDIA device(s) seen by the driver, or None (torch not needed)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired):
            pass
    if Path("/dev/nvidia0").exists():
        return "/dev/nvidia0"
    return None


def preflight(dry_run: bool) -> tuple[int | None, dict]:
    """(exit code to stop with, or None to go on; facts about the machine)."""
    facts: dict = {"python": sys.version.split()[0], "dry_run": dry_run}
    if not dry_run:
        dev = _device_present()
        if dev is None:
            print(
                "device_check: no CUDA device on this machine; nothing measured "
                "(--dry-run runs the same steps on the CPU)"
            )
            return 0, facts
        facts["driver_sees"] = dev
    try:
        import torch
    except ImportError:
        print(f"device_check: torch is not installed; install the CUDA build: {CUDA_TORCH}")
        return 1, facts
    facts.update(torch=torch.__version__, torch_cuda=torch.version.cuda)
    if not dry_run:
        if torch.version.cuda is None:
            print(
                f"device_check: torch {torch.__version__} is the CPU build (the project's "
                f"set-up pins it); install the CUDA build: {CUDA_TORCH}"
            )
            return 1, facts
        if not torch.cuda.is_available():
            print(
                f"device_check: torch {torch.__version__} (CUDA {torch.version.cuda}) cannot "
                f"use the device ({facts['driver_sees']}): driver too old for this build? "
                "`nvidia-smi` shows the driver's CUDA version"
            )
            return 1, facts
        facts["device"] = torch.cuda.get_device_name(0)
        facts["device_memory_gib"] = round(
            torch.cuda.get_device_properties(0).total_memory / 2**30, 1
        )
    missing = [pkg for mod, pkg in NEEDED.items() if importlib.util.find_spec(mod) is None]
    if missing:
        print(
            f"device_check: missing Python packages: {' '.join(missing)}. On a machine with a "
            "package registry run `scripts/device_wheels.sh wheels` (wheels for Python 3.12), "
            "bring the wheels folder here, then `pip install --no-index --find-links wheels "
            f"{' '.join(missing)}`"
        )
        return 1, facts
    return None, facts


def plan(out: Path, dry_run: bool) -> list[dict]:
    """The steps: name, argv, time limit (s), what its JSON figures file is (if any)."""
    py = sys.executable
    dev = "cpu" if dry_run else "cuda"
    demo = out / "demo"
    if dry_run:
        train_bench = [
            "--samples",
            "256",
            "--steps",
            "1",
            "--batches",
            "16",
            "--baseline",
            "16",
            "--backend",
            "aot_eager",
        ]
        eval_args = ["--n", "120", "--threads", "1"]
        loss_args = ["--repeats", "1", "--sizes", "tiny"]
        demo_args = ["--n-train", "256", "--n-test", "64"]
        train_sets = [
            "data.samples_per_epoch=128",
            "optim.batch_size=32",
            "compile=off",
            "log_every=2",
        ]
    else:
        train_bench = [
            "--samples",
            "400000",
            "--steps",
            "20",
            "--batches",
            "1024,128",
            "--baseline",
            "128,1024",
        ]
        eval_args, loss_args, demo_args = [], ["--repeats", "10"], []
        train_sets = ["compile=reduce-overhead"]
    steps = [
        {
            "name": "bench_train",
            "limit": 200,
            "json": out / "bench_train.json",
            "argv": [
                py,
                str(ROOT / "scripts/bench_train.py"),
                "--device",
                dev,
                "--compile",
                "off,default,reduce-overhead",
                "--json",
                str(out / "bench_train.json"),
                *train_bench,
            ],
        },
        {
            "name": "bench_eval",
            "limit": 45,
            "argv": [py, str(ROOT / "scripts/bench_eval.py"), "--device", dev, *eval_args],
        },
        {
            "name": "bench_losses",
            "limit": 45,
            "argv": [py, str(ROOT / "scripts/bench_losses.py"), "--device", dev, *loss_args],
        },
        {
            "name": "demo_data",
            "limit": 70,
            "argv": [py, "-m", "ihmr.cli", "demo-data", "--out", str(demo), *demo_args],
        },
        {
            "name": "torchrun_train",
            "limit": 100,
            "argv": [
                py,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node",
                "1",
                str(Path(__file__).resolve()),
                "--worker-train",
                "--",
                "--config",
                str(ROOT / "configs/ihmr/demo_bmc.yaml"),
                "--out",
                str(out / "train"),
                *[
                    x
                    for s in [
                        f"data.root={demo}",
                        "optim.epochs=1",
                        f"device={dev}",
                        "progress=false",
                        *train_sets,
                    ]
                    for x in ("--set", s)
                ],
            ],
        },
    ]
    return steps


def run_step(step: dict, budget_left: float) -> dict:
    limit = max(1.0, min(step["limit"], budget_left))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            step["argv"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit
        )
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = "timeout"
        text = "".join(
            x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
            for x in (exc.stdout, exc.stderr)
        )
        text += f"\n(stopped after {limit:.0f} s)"
    res = {
        "name": step["name"],
        "argv": step["argv"],
        "rc": rc,
        "limit_s": round(limit),
        "seconds": round(time.perf_counter() - t0, 1),
        "output_tail": [ln for ln in text.splitlines() if "Notice" not in ln][-40:],
    }
    if step.get("json") and Path(step["json"]).is_file():
        res["figures"] = json.loads(Path(step["json"]).read_text())
    print(f"  {step['name']:<15} rc {rc!s:<8} {res['seconds']:7.1f} s")
    return res


def table(report: dict) -> str:
    what = (
        "dry run, CPU: figures mean nothing"
        if report["dry_run"]
        else report["machine"].get("device", "?")
    )
    lines = [
        f"# device check ({what})",
        "",
        f"machine: {json.dumps(report['machine'])}",
        "",
        "| step | exit | seconds |",
        "|---|---|---:|",
    ]
    lines += [f"| {s['name']} | {s['rc']} | {s['seconds']} |" for s in report["steps"]]
    for s in report["steps"]:
        fig = s.get("figures")
        if s["name"] == "bench_train" and fig:
            lines += [
                "",
                f"bench_train ({fig['samples']:,} samples, {fig['device_name']}):",
                "",
                "| variant | compile | batch | ms/step | s/epoch | 20 epochs (s) | compile (s) |",
                "|---|---|---:|---:|---:|---:|---:|",
            ]
            for r in fig["rows"]:
                c = "" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
                lines.append(
                    f"| {r['variant']} | {r['compile']} | {r['batch']} | "
                    f"{r['ms_per_step']:.2f} | {r['s_per_epoch']:.1f} | "
                    f"{r['projected_s']:.0f} | {c} |"
                )
            lines += [f"- ratio {k}: {v:.2f}x" for k, v in fig["ratios"].items()]
        elif s["name"] in ("bench_eval", "bench_losses", "torchrun_train"):
            keep = [ln for ln in s["output_tail"] if ln.strip()][-12:]
            lines += ["", f"{s['name']} (last lines):", "", "```", *keep, "```"]
    return "\n".join(lines) + "\n"


def worker_train(args: list[str]) -> int:
    """Under torchrun: join an NCCL (CPU: gloo) group, check an all-reduce, run `ihmr train`."""
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo")
    x = torch.ones(1, device="cuda" if cuda else "cpu")
    dist.all_reduce(x)
    print(
        f"process group {dist.get_backend()}: all_reduce over {dist.get_world_size()} "
        f"process(es) gave {float(x)}",
        flush=True,
    )
    if float(x) != dist.get_world_size():
        return 3
    from ihmr.cli import main

    sys.argv = ["ihmr", "train", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        dist.destroy_process_group()
    return code


def main() -> int:
    if "--worker-train" in sys.argv:
        rest = sys.argv[sys.argv.index("--worker-train") + 1 :]
        return worker_train(rest[1:] if rest[:1] == ["--"] else rest)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for device_check.json and device_check.md")
    ap.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, tiny")
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"seconds for all steps "
        f"(default {BUDGET_S}; dry run: 3x, the CPU machine may be shared)",
    )
    args = ap.parse_args()
    slack = 3.0 if args.dry_run else 1.0
    args.budget = args.budget or BUDGET_S * slack
    t0 = time.perf_counter()
    stop, facts = preflight(args.dry_run)
    if stop is not None:
        return stop
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"device_check -> {out} ({'dry run on the CPU' if args.dry_run else facts['device']})")
    report = {
        "dry_run": args.dry_run,
        "machine": facts,
        "steps": [],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for step in plan(out, args.dry_run):
        step["limit"] *= slack
        left = args.budget - (time.perf_counter() - t0)
        if left < 5:
            report["steps"].append(
                {
                    "name": step["name"],
                    "rc": "skipped (time budget)",
                    "seconds": 0,
                    "argv": step["argv"],
                    "output_tail": [],
                }
            )
            continue
        report["steps"].append(run_step(step, left))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    for name, text in (
        ("device_check.json", json.dumps(report, indent=1, default=str)),
        ("device_check.md", table(report)),
    ):
        tmp = out / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out / name)
    failed = [s["name"] for s in report["steps"] if s["rc"] != 0]
    print(
        f"device_check: {len(report['steps']) - len(failed)}/{len(report['steps'])} steps "
        f"ok in {report['seconds']} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + f"; {out / 'device_check.md'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
