"""The synthetic benchmark of Balanced MSE (paper Sec. 4.1, App. B.1, Table 4, Figs. 2-4, 7).

``run_benchmark(SynthConfig())`` trains every model of Table 4 (and the nonlinear Fig. 4) as
a few batched tensor programs; ``write_outputs`` writes results.json/.csv, table.md and the
figures. ``ihmr synth --out DIR`` does both with a progress display.
"""

from __future__ import annotations

from ..errors import ConfigError
from .benchmark import BenchmarkResult, SynthConfig, run_benchmark, summarize
from .report import check_ordering, write_outputs


def set_threads(threads: int) -> None:
    """Use ``threads`` threads in torch and in the compiled kernels (numba, when installed)."""
    import torch

    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def run_with_progress(config: SynthConfig, threads: int | None = None) -> BenchmarkResult:
    """:func:`run_benchmark` with a rich progress bar per family of models."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if threads is not None:
        set_threads(threads)
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} epochs"), TimeElapsedColumn()) as bar:
        tasks: dict = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            if done % 10 == 0 or done == total:
                bar.update(tasks[name], completed=done)

        return run_benchmark(config, progress=progress)


__all__ = ["BenchmarkResult", "SynthConfig", "check_ordering", "run_benchmark",
           "run_with_progress", "set_threads", "summarize", "write_outputs"]
