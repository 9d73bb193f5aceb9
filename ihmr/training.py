"""The training loop every trainer shares, on top of :mod:`ihmr.runs`.

- :func:`fit`: the epoch loop of the three trainers (train, validate and select, log a row,
  checkpoint); :func:`train_steps`: one epoch of plain optimiser steps with the NaN guard;
  :class:`TrainResult`: what every trainer returns. Epochs are numbered from 1 everywhere a user
  sees them (metrics rows, messages, the best record); a checkpoint's ``epoch`` counts the epochs
  done, so it is the number of the last one.
- :class:`Progress`: a rich progress bar (disabled off rank 0 or on request), the one bar of the
  package.
- :func:`tensorboard_writer` / :func:`log_scalars`: TensorBoard when it is installed, else no-ops.
- :func:`iter_batches`: shuffled index batches drawn from a seeded generator.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from .runs import RunDir, check_loss, is_main


@dataclass
class TrainResult:
    """What every trainer returns (pose :func:`ihmr.pose.train.train`, age
    :func:`ihmr.age.train.train`, depth :func:`ihmr.depth.train.train_depth`).

    Attributes:
        run_dir: the run folder.
        checkpoint: the model to evaluate or fine-tune from: ``best.pt`` where an epoch is
            selected on validation (age, depth), ``head.pt`` where the last (or EMA) weights are
            kept (pose).
        history: the ``metrics.jsonl`` rows, epoch 1 first (a resumed run's earlier rows too).
        best: the selected epoch's record ``{"metric", "value", "epoch"}`` (``{}`` for pose).
        seconds: wall time of the call.
        eval_metrics: test metrics when the trainer evaluates its result (pose ``eval.labels``).
        info: facts of the trainer (pose: device, amp, compile, samples ...).
    """

    run_dir: Path
    checkpoint: Path
    history: list[dict[str, Any]]
    best: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    eval_metrics: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """Epochs done: the last row's epoch (0 before the first)."""
        return int(self.history[-1]["epoch"]) if self.history else 0

    @property
    def last_metrics(self) -> dict[str, Any]:
        """The last epoch's row (``{}`` before the first)."""
        return self.history[-1] if self.history else {}


Evaluation = tuple[dict[str, Any], float, Callable[[], Mapping[str, Any]]]


def fit(
    run: RunDir,
    objects: Mapping[str, Any],
    *,
    epochs: int,
    start: int,
    train_epoch: Callable[[int], dict[str, Any]],
    evaluate: Callable[[int, dict[str, Any]], Evaluation] | None = None,
    best: Mapping[str, Any] | None = None,
    metric: str = "",
    generators: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    writer: Any = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The epoch loop of every trainer: epochs ``start + 1`` .. ``epochs``, numbered from 1.

    Each epoch: ``row = train_epoch(epoch)`` (one pass over the training data, NaN guard
    included); with ``evaluate``, ``row, score, state = evaluate(epoch, row)`` adds validation
    metrics to the row, and an epoch whose ``score`` is below the best so far becomes ``best``
    and writes ``state()`` to ``best.pt``; the row goes to ``metrics.jsonl`` / ``metrics.csv`` and
    TensorBoard (``writer``); ``last.pt`` holds ``objects``, the RNG states (and ``generators``),
    ``best`` and ``extra``; then ``on_epoch(epoch, row)``. The row is logged before the
    checkpoint: a run killed between the two redoes the epoch and replaces the row, so a resumed
    run's logs and weights equal those of an uninterrupted one.

    Data pipelines that draw by epoch keep drawing with the 0-based index ``epoch - 1``.

    Args:
        start: epochs already done (0, or the ``epoch`` of the checkpoint resumed from); rows of
            later epochs (left by a killed run) are dropped, the earlier ones open the history.
        best: the best-so-far record to continue from (the resumed checkpoint's ``best``).
        metric: the name recorded in ``best`` (e.g. ``val_bmae``).

    Returns:
        (history: the rows, epoch 1 first; best: ``{"metric", "value", "epoch"}`` of the
        selected epoch (epoch 0, value inf while none has a finite score; ``{}`` without
        ``evaluate``)).
    """
    if start:
        run.truncate_metrics(start)
    history = run.read_metrics() if start else []
    best = dict(best or ({"metric": metric, "value": math.inf, "epoch": 0} if evaluate else {}))
    for epoch in range(start + 1, epochs + 1):
        row = train_epoch(epoch)
        if evaluate is not None:
            row, score, state = evaluate(epoch, row)
            if score < best.get("value", math.inf):
                best = {"metric": metric, "value": score, "epoch": epoch}
                run.save_best(state())
        run.log_metrics(epoch, row)
        log_scalars(writer, epoch, row)
        run.save(objects, epoch=epoch, best=best, generators=generators, extra=extra)
        history.append({"epoch": epoch, **row})
        if on_epoch is not None:
            on_epoch(epoch, row)
    return history, best


def train_steps(
    batches: Iterable[Any],
    loss_of: Callable[[Any], Any],
    optimizer: Any,
    *,
    run: RunDir,
    epoch: int,
    steps: int,
    description: str = "",
    progress: bool = True,
    fields: Callable[[], Mapping[str, float]] | None = None,
) -> float:
    """One epoch of plain optimiser steps; returns the mean loss.

    For each of at most ``steps`` batches: ``loss = loss_of(batch)``, the NaN guard
    (:func:`check_loss`, naming epoch ``epoch``, the global step counted from 1 and the batch),
    backward, ``optimizer.step()``. ``progress``: show a bar (rank 0 only); ``fields``: more values
    for it (e.g. sigma; read only when the bar is shown, as reading a GPU value is a host sync).
    """
    total, count = 0.0, 0
    with Progress(steps, description, enabled=progress and run.main) as bar:
        for b, batch in enumerate(batches):
            if b >= steps:
                break
            loss = loss_of(batch)
            value = check_loss(
                loss,
                epoch=epoch,
                step=(epoch - 1) * steps + b + 1,
                batch=b,
                last_checkpoint=run.last,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + value, count + 1
            if bar.enabled:
                bar.advance(loss=value, **(fields() if fields is not None else {}))
    return total / max(count, 1)


# --------------------------------------------------------------------------- progress & logging
class Progress:
    """A rich progress bar with a free-text field (loss, sigma ...); a no-op when disabled.

    Use as a context manager: ``with Progress(total, "epoch 3") as bar: bar.advance(loss=0.1)``.
    """

    def __init__(self, total: int, description: str = "", enabled: bool | None = None) -> None:
        self.total = total
        self.description = description
        self.enabled = is_main() if enabled is None else enabled
        self._progress = None
        self._task = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            self._progress = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, info="")
        return self

    def advance(self, n: int = 1, **fields: float) -> None:
        if self._progress is not None:
            info = " ".join(f"{k}={v:.4g}" for k, v in fields.items())
            self._progress.update(self._task, advance=n, info=info)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()


def tensorboard_writer(log_dir: str | os.PathLike, enabled: bool = True) -> Any:
    """A ``torch.utils.tensorboard.SummaryWriter`` on the main process if TensorBoard is installed,
    else ``None`` (TensorBoard is optional; callers test for ``None``)."""
    if not enabled or not is_main():
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(log_dir))


def log_scalars(writer: Any, step: int, scalars: Mapping[str, Any], prefix: str = "") -> None:
    """Write numeric scalars to a TensorBoard writer (no-op for ``None``)."""
    if writer is None:
        return
    for k, v in scalars.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            writer.add_scalar(prefix + k, v, step)


def iter_batches(n: int, batch_size: int, generator: Any, drop_last: bool = False) -> Iterable[Any]:
    """Index tensors of batches of a fresh random permutation of ``range(n)`` from ``generator``."""
    perm = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        yield perm[i : i + batch_size]


__all__ = [
    "Progress",
    "TrainResult",
    "fit",
    "iter_batches",
    "log_scalars",
    "tensorboard_writer",
    "train_steps",
]
