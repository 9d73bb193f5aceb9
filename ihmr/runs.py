"""Shared run machinery: run folders, resumable checkpoints, NaN guard, devices, DDP helpers.

Every training job in ``ihmr`` (IHMR head, age, depth) uses the same pieces:

- :class:`RunDir`: one folder per run holding ``config.yaml`` (the resolved config),
  ``metrics.jsonl`` and ``metrics.csv`` (one row per epoch), ``last.pt`` (written every epoch) and
  ``best.pt`` (the model selected on validation). Only rank 0 writes.
- :func:`save_checkpoint` / :func:`load_checkpoint`: a plain dict of ``state_dict()`` s (model,
  optimisers, schedulers, loss modules holding sigma), the epoch, the best-so-far record and the
  RNG states of torch, numpy, Python's ``random`` and any extra ``torch.Generator`` s, written
  atomically and read back with ``weights_only=True``. A run killed during epoch ``k + 1`` resumes
  from the end of epoch ``k`` and ends with the weights the uninterrupted run would have.
- :func:`check_loss`: the NaN guard; raises :class:`NonFiniteLossError` naming the epoch, step,
  batch and the last good checkpoint.
- the epoch loop built on these pieces, the progress bar and TensorBoard logging live in
  :mod:`ihmr.training`.
- :func:`resolve_device`: the one reading of a ``device`` setting (``auto``, ``cpu``, ``cuda[:N]``).
- :func:`dist_info`, :func:`init_distributed`, :func:`is_main`: ``torchrun`` / DDP helpers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist

from .config import save_config
from .errors import ConfigError, DataError, IhmrError
from .io import check_writable_dir, load_torch_file, torch_save, write_text

CHECKPOINT_VERSION = 1


class NonFiniteLossError(IhmrError, FloatingPointError):
    """A training loss became NaN or infinite."""


# --------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    """Process placement under ``torchrun`` (all zeros / one for a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` as ``torchrun`` sets them (defaults 0 / 1 / 0)."""
    try:
        return DistInfo(
            int(os.environ.get("RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    except ValueError as exc:
        raise IhmrError(
            f"RANK/WORLD_SIZE/LOCAL_RANK must be integers ({exc}); launch with torchrun"
        ) from exc


def is_main() -> bool:
    """True on rank 0 (and in a plain single process): the only process that writes files."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return dist_info().is_main


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group when launched by ``torchrun`` with ``WORLD_SIZE > 1``.

    Picks ``nccl`` when CUDA is available (and binds the process to ``cuda:LOCAL_RANK``), else
    ``gloo``. A single process returns immediately without touching ``torch.distributed``.
    """
    info = dist_info()
    if info.world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        return info
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend)
    return info


def default_device(info: DistInfo | None = None) -> str:
    """``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    info = info or dist_info()
    return f"cuda:{info.local_rank}" if torch.cuda.is_available() else "cpu"


def resolve_device(spec: Any) -> Any:
    """The ``torch.device`` a ``device`` setting names; the one resolver of the package.

    ``auto`` (or ``None``) -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; ``cpu``,
    ``cuda``, ``cuda:N`` (or a ``torch.device``) are checked: a name torch does not know, CUDA
    asked for on a machine without it, or a GPU index past the last one raise
    :class:`~ihmr.errors.ConfigError` saying what to use instead.
    """
    if spec is None or spec == "auto":
        return torch.device(default_device())
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device {spec!r} is not a device name; use auto, cpu, cuda or cuda:N"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {str(spec)!r} asked for but torch.cuda.is_available() is "
                "False; use --device cpu (in a config: --set device=cpu)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {str(spec)!r} asked for but this machine has "
                f"{torch.cuda.device_count()} GPU(s) (cuda:0 ..); use cuda or "
                "auto"
            )
    return dev


def unwrap(model: Any) -> Any:
    """The bare module inside a DDP / ``torch.compile`` wrapper (for state dicts)."""
    for attr in ("module", "_orig_mod"):
        while hasattr(model, attr):
            model = getattr(model, attr)
    return model


# --------------------------------------------------------------------------- RNG state
def rng_state(generators: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), numpy's global RNG, ``random`` and extra generators.

    Everything is stored as tensors, ints and lists so that ``torch.load(weights_only=True)``
    reads it back.
    """
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], generators: Mapping[str, Any] | None = None) -> None:
    """Restore what :func:`rng_state` captured (missing generators are an error)."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    saved = state.get("generators", {})
    for name, g in (generators or {}).items():
        if name not in saved:
            raise DataError(
                f"checkpoint has no state for generator {name!r} (it has {sorted(saved)}); resume "
                "with the code version that wrote it"
            )
        g.set_state(saved[name])
    if (
        "cuda" in state
        and torch.cuda.is_available()
        and len(state["cuda"]) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    path: str | os.PathLike,
    objects: Mapping[str, Any],
    *,
    epoch: int,
    best: Mapping[str, Any] | None = None,
    generators: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a resumable checkpoint atomically: the old file stays until the new one is whole.

    Args:
        path: destination, e.g. ``run/last.pt``.
        objects: name -> object with ``state_dict()`` (model, optimiser, scheduler, loss module with
            sigma ...). DDP / compile wrappers are unwrapped.
        epoch: number of completed epochs (the number of the last one; resume starts after it).
        best: best-so-far record, e.g. ``{"metric": "val_bmae", "value": 7.1, "epoch": 3}``.
        generators: extra ``torch.Generator`` s (data shuffling) whose state must be resumed.
        extra: plain data (config dict, label range, feature dimension ...).
    """
    ckpt = {
        "version": CHECKPOINT_VERSION,
        "epoch": int(epoch),
        "best": dict(best or {}),
        "state": {k: unwrap(v).state_dict() for k, v in objects.items()},
        "rng": rng_state(generators),
        "extra": dict(extra or {}),
    }
    return torch_save(path, ckpt)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; a clear error if missing or unreadable."""
    path = Path(path)
    ckpt = load_torch_file(path, map_location=map_location)
    if not isinstance(ckpt, dict) or "state" not in ckpt:
        raise DataError(f"{str(path)!r} is not an ihmr checkpoint (no 'state' entry)")
    return ckpt


def load_checkpoint(
    path: str | os.PathLike,
    objects: Mapping[str, Any] | None = None,
    *,
    generators: Mapping[str, Any] | None = None,
    restore_rng: bool = True,
    map_location: Any = "cpu",
) -> dict[str, Any]:
    """Load states into ``objects`` (each must be in the checkpoint) and restore the RNG states.

    Returns the checkpoint dict (``epoch``, ``best``, ``extra`` ...).
    """
    ckpt = read_checkpoint(path, map_location)
    for name, obj in (objects or {}).items():
        if name not in ckpt["state"]:
            raise DataError(
                f"checkpoint {str(path)!r} has no state for {name!r} "
                f"(it has {sorted(ckpt['state'])})"
            )
        unwrap(obj).load_state_dict(ckpt["state"][name])
    if restore_rng:
        set_rng_state(ckpt["rng"], generators)
    return ckpt


# --------------------------------------------------------------------------- NaN guard
def check_loss(
    loss: Any, *, epoch: int, step: int, batch: int, last_checkpoint: str | os.PathLike | None
) -> float:
    """Return ``float(loss)``; raise :class:`NonFiniteLossError` if it is NaN or infinite.

    The message names where it happened and the last good checkpoint to resume from.
    """
    value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
    if value != value or value in (float("inf"), float("-inf")):
        where = (
            f"last good checkpoint: {str(last_checkpoint)!r} (resume from it with a lower learning "
            "rate, or check the batch's labels)"
            if last_checkpoint and Path(last_checkpoint).is_file()
            else "no checkpoint written yet (the first epoch failed; check the data and "
            "learning rate)"
        )
        raise NonFiniteLossError(
            f"loss is {value} at epoch {epoch}, global step {step}, batch {batch}; "
            f"training stopped; {where}"
        )
    return value


# --------------------------------------------------------------------------- run folder
class RunDir:
    """A run folder: ``config.yaml``, ``metrics.jsonl``, ``metrics.csv``, ``last.pt``, ``best.pt``.

    Args:
        root: the folder (created if needed, on the main process only).
        main: whether this process writes (rank 0); other ranks get a read-only view.
    """

    def __init__(self, root: str | os.PathLike, main: bool | None = None) -> None:
        self.root = Path(root)
        self.main = is_main() if main is None else main
        if self.main:
            check_writable_dir(self.root)

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def metrics_jsonl(self) -> Path:
        return self.root / "metrics.jsonl"

    def check_resume(self, resume: bool) -> None:
        """The one resume rule of ``ihmr train``, ``ihmr age train`` and ``ihmr depth train``.

        ``resume=True`` (``--resume RUN_DIR``) continues the run in this folder, so ``last.pt``
        must exist (:class:`FileNotFoundError` otherwise); without it a folder that already holds
        a run (``last.pt``) is refused (:class:`~ihmr.errors.ConfigError`), so a run is never
        overwritten or silently continued. Call it before the first write to the folder.
        """
        if resume and not self.last.is_file():
            raise FileNotFoundError(
                f"nothing to resume: {str(self.last)!r} does not exist (the "
                "run never finished an epoch); start it again without "
                "--resume"
            )
        if self.main and not resume and self.last.is_file():
            raise ConfigError(
                f"{str(self.root)!r} already holds a run (last.pt); resume it with "
                "--resume or choose another --out"
            )

    def save_config(self, cfg: Any) -> Path:
        path = self.root / "config.yaml"
        if self.main:
            save_config(cfg, path)
        return path

    def read_metrics(self) -> list[dict[str, Any]]:
        """The logged rows, oldest first (empty if nothing was logged)."""
        if not self.metrics_jsonl.is_file():
            return []
        return [json.loads(line) for line in self.metrics_jsonl.read_text().splitlines() if line]

    def log_metrics(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        """Record one row for ``epoch`` (numbered from 1) in ``metrics.jsonl`` and ``metrics.csv``
        (atomically).

        Rows for ``epoch`` or later (left by a killed run that is being resumed) are replaced, so
        the logs of a resumed run equal those of an uninterrupted one.
        """
        if not self.main:
            return
        row = {"epoch": int(epoch), **{k: _plain(v) for k, v in metrics.items()}}
        rows = [r for r in self.read_metrics() if r.get("epoch", -1) < epoch] + [row]
        write_text(self.metrics_jsonl, "".join(json.dumps(r) + "\n" for r in rows))
        columns: list[str] = []
        for r in rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.root / "metrics.csv", buf.getvalue())

    def truncate_metrics(self, epochs_done: int) -> None:
        """Keep the rows of epochs 1 .. ``epochs_done`` (those the checkpoint being resumed from
        covers); drop the later ones a killed run left."""
        if self.main and self.metrics_jsonl.is_file():
            rows = [r for r in self.read_metrics() if r.get("epoch", 0) <= epochs_done]
            write_text(self.metrics_jsonl, "".join(json.dumps(r) + "\n" for r in rows))

    def save(self, objects: Mapping[str, Any], **kwargs: Any) -> Path | None:
        """:func:`save_checkpoint` to ``last.pt`` on the main process."""
        return save_checkpoint(self.last, objects, **kwargs) if self.main else None

    def save_best(self, state: Mapping[str, Any]) -> Path | None:
        """Write a plain dict (e.g. model weights + metadata) to ``best.pt`` atomically."""
        return torch_save(self.best, dict(state)) if self.main else None


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


__all__ = [
    "DistInfo",
    "NonFiniteLossError",
    "RunDir",
    "check_loss",
    "default_device",
    "dist_info",
    "init_distributed",
    "is_main",
    "load_checkpoint",
    "read_checkpoint",
    "resolve_device",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "unwrap",
]
