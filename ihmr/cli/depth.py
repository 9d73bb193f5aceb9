"""``ihmr depth ...``: NYUD2-DIR demo data, training and evaluation with per-pixel Balanced MSE."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .options import ConfigOption, OutOption, ResumeOption, SetOption, run_config_args

depth = typer.Typer(
    help="Depth estimation (NYUD2-DIR) with per-pixel Balanced MSE.", no_args_is_help=True
)


@depth.command("demo-data")
def demo_data(
    out: Path = typer.Option(Path("demo/nyud2"), help="Dataset root to write."),
    train_scenes: int = typer.Option(30, help="Rendered training rooms (8 views each)."),
    test_scenes: int = typer.Option(16, help="Rendered test rooms (8 views each)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Render the offline NYUD2-DIR stand-in (pyrender rooms) in the real file layout."""
    from ihmr.depth.demo_data import make_demo_dataset

    s = make_demo_dataset(out, train_scenes=train_scenes, test_scenes=test_scenes, seed=seed)
    typer.echo(
        f"wrote {s['root']}: {s['train_images']} train / {s['test_images']} test images, "
        f"{s['mask_pixels']} balanced test pixels, {s['share_2_4m']:.0%} of training "
        f"pixels at 2-4 m ({s['seconds']} s)"
    )


@depth.command("train")
def train(
    config: Optional[Path] = ConfigOption,
    sets: List[str] = SetOption,
    out: Optional[Path] = OutOption,
    resume: Optional[Path] = ResumeOption,
) -> None:
    """Train the Hu et al. network with the loss of the config (configs/depth/*.yaml)."""
    from ihmr.config import load_config
    from ihmr.depth.train import DepthTrainConfig, train_depth

    path, overrides, extra = run_config_args(config, sets, out, resume)
    cfg = load_config(DepthTrainConfig, path, overrides, extra)
    r = train_depth(cfg, resume=resume is not None)
    typer.echo(
        f"run folder: {r.run_dir} (best epoch {r.best['epoch']}, val bRMSE "
        f"{r.best['value']:.3f} m, {r.seconds} s)"
    )


@depth.command("eval")
def evaluate(
    checkpoints: List[Path] = typer.Argument(..., help="best.pt of one or more runs."),
    out: Path = typer.Option(Path("runs/depth/eval"), help="Output folder."),
    data_root: Optional[str] = typer.Option(None, help="Dataset root (default: the run's)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
) -> None:
    """metrics.json, table.md (Table 2 layout), error_per_bin.png, examples.png per run."""
    from ihmr.depth.evaluate import compare_runs, evaluate_depth_checkpoint

    files = {}
    for ck in checkpoints:
        name = ck.parent.name
        evaluate_depth_checkpoint(ck, out / name, data_root=data_root, device=device, name=name)
        files[name] = out / name / "metrics.json"
    typer.echo(compare_runs(files, out / "table.md"))
    typer.echo(f"wrote {out}/<run>/metrics.json, table.md, error_per_bin.png, examples.png")


@depth.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/depth-demo"), help="Output folder (resumable)."),
    data: Optional[Path] = typer.Option(
        None, help="Dataset root (default: OUT/data; rendered if it holds no demo.json)."
    ),
    seeds: int = typer.Option(3, help="Seeds 0..N-1 of each R run."),
    stage1_epochs: int = typer.Option(6, help="Epochs of the whole network (MSE)."),
    head: str = typer.Option(
        "pixel",
        help="R: 'pixel' (a per-pixel regressor on the image "
        "at the input resolution) or 'hu' (Hu et al.'s R on the cached "
        "features).",
    ),
    head_epochs: Optional[int] = typer.Option(
        None, help="Epochs of each R run (default: 3 over the pixels for 'pixel', 10 for 'hu')."
    ),
    sigma: Optional[float] = typer.Option(
        None, help="BNI / GAI noise sigma in metres (default: the data's depth-read noise)."
    ),
    threads: int = typer.Option(1, help="torch CPU threads (one is fastest on a shared machine)."),
    read_noise: Optional[float] = typer.Option(
        None, help="Depth-read noise of the rendered data in metres (default 0.4; new data only)."
    ),
) -> None:
    """Whole benchmark on the haze-room demo: data, stage 1 (MSE), cached inputs, R re-trained
    with MSE / reweighting + LDS / BNI / GAI over seeds, report.md and error_per_bin.png."""
    from ihmr.depth.demo import run_depth_demo

    res = run_depth_demo(
        out,
        data,
        seeds=tuple(range(seeds)),
        stage1_epochs=stage1_epochs,
        head_epochs=head_epochs,
        sigma=sigma,
        threads=threads,
        read_noise=read_noise,
        head=head,
        log=typer.echo,
    )
    typer.echo(f"report: {res['report']} ({res['seconds']} s)")
