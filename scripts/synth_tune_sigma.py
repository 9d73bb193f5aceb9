"""Sigma chosen on the validation set vs the true and the learned sigma on Table 4's settings.

    python scripts/synth_tune_sigma.py                        # full protocol, 5 seeds, 1 thread
    python scripts/synth_tune_sigma.py --epochs-scale 0.05 --seeds 2   # quick check of the script
    python scripts/synth_tune_sigma.py --out runs/synth-sigma # also writes table.md / study.json

Prints the table (test MSE mean ± std over seeds) and how many settings meet the two rules of
docs/sigma.md; nothing is asserted. The grid deliberately leaves out the true sigma (1); each
model then takes ``--refine`` steps of parabolic interpolation in log sigma on its validation MSE.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

DEFAULT_GRID = "0.3,0.5,0.8,1.25,2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=DEFAULT_GRID, help="comma-separated sigmas")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--refine", type=int, default=6, help="parabolic refinement steps")
    ap.add_argument("--distributions", default="normal,exponential,mvn")
    ap.add_argument("--epochs-scale", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from ihmr.synthetic import set_threads
    from ihmr.synthetic.sigma import markdown, tune_table4

    set_threads(args.threads)
    grid = [float(s) for s in args.grid.split(",") if s.strip()]
    study = tune_table4(
        grid,
        seeds=args.seeds,
        refine=args.refine,
        distributions=args.distributions.split(","),
        epochs_scale=args.epochs_scale,
        log=lambda m: print(m, flush=True),
    )
    table = markdown(study)
    print(table)
    secs = study["seconds"]
    print(
        f"wall time: {secs['total']:.1f} s ({secs['baseline']:.1f} s true + learned sigma, "
        f"{secs['total'] - secs['baseline']:.1f} s for {len(study['grid'])} grid sigmas and "
        f"the refinement), {args.threads} thread(s)"
    )
    if args.out is not None:
        from ihmr.io import check_writable_dir, write_json, write_text

        out = check_writable_dir(args.out)
        write_text(out / "table.md", table)
        write_json(
            out / "study.json", {**study, "rows": [dataclasses.asdict(r) for r in study["rows"]]}
        )
        print(f"wrote {out / 'table.md'} and {out / 'study.json'}")


if __name__ == "__main__":
    main()
