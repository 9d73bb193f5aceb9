"""The synthetic benchmark of Balanced MSE (paper Sec. 4.1, App. B.1, Table 4, Figs. 2-4, 7).

``run_benchmark(SynthConfig())`` trains every model of Table 4 (and the nonlinear Fig. 4) as
a few batched tensor programs; ``write_outputs`` writes results.json/.csv, table.md and the
figures. ``ihmr synth --out DIR`` does both with a progress display.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..training import Progress
from .benchmark import BenchmarkResult, SynthConfig, run_benchmark, summarize
from .report import check_ordering, write_outputs


def set_threads(threads: int) -> None:
    """Use ``threads`` threads in torch and in the compiled kernels (numba, when installed)."""
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


class _FamilyBars:
    """``progress(family, epochs_done, epochs_total)`` for :func:`run_benchmark`: one
    :class:`ihmr.training.Progress` bar per family of models, the families one after another."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.bar: Progress | None = None
        self.done = 0

    def __call__(self, name: str, done: int, total: int) -> None:
        if name != self.name:
            self.close()
            self.name, self.done = name, 0
            self.bar = Progress(total, f"{name} (epochs)", enabled=True).__enter__()
        if done % 10 == 0 or done == total:
            self.bar.advance(done - self.done)
            self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def run_with_progress(config: SynthConfig, threads: int | None = None) -> BenchmarkResult:
    """:func:`run_benchmark` with a progress bar per family of models."""
    if threads is not None:
        set_threads(threads)
    bars = _FamilyBars()
    try:
        return run_benchmark(config, progress=bars)
    finally:
        bars.close()


__all__ = [
    "BenchmarkResult",
    "SynthConfig",
    "check_ordering",
    "run_benchmark",
    "run_with_progress",
    "set_threads",
    "summarize",
    "write_outputs",
]
