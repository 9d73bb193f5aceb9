"""Age training: stage 1 (vanilla, whole network) and stage 2 (RRT: re-trained ``linear`` only).

Stage 1 follows DIR: L1 (or MSE), Adam, step schedule, training augmentation. Stage 2 freezes the
stage-1 backbone, re-initialises ``linear`` and trains it with a Balanced MSE loss (BMC, GAI, BNI)
or a baseline (``loss.kind``); sigma has its own optimizer group (lr ``optim.sigma_lr``, no
schedule). Both stages read ``optim`` (lr, epochs, batch size, weight decay, step decay at
``optim.milestones``). Stage 2 runs either on cached features (``rrt.features``; seconds) or
through the frozen backbone on the images.

Both stages select the epoch on the *validation* split (bMAE by default) and never look at the test
split. Every epoch writes ``last.pt`` (``resume=True``, ``ihmr age train --resume RUN_DIR``,
continues a killed run to the same result; :meth:`ihmr.runs.RunDir.check_resume` is the rule)
and a metrics row (epochs numbered from 1); the selected model is ``best.pt``, a plain dict::

    {"kind": "age", "stage", "model": state_dict, "criterion": state_dict | {}, "config": dict,
     "epoch" (from 1), "val": metrics, "train_counts": (n_bins,) training images per integer age}
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from ..config import to_dict
from ..errors import ConfigError, DataError
from ..io import load_torch_file
from ..losses import noise_parameters
from ..runs import (
    RunDir,
    init_distributed,
    load_checkpoint,
    resolve_device,
    unwrap,
)
from ..training import TrainResult, fit, iter_batches, tensorboard_writer, train_steps
from .config import STAGE1_LOSSES, AgeConfig
from .data import dataset_paths, make_dataset, read_age_csv
from .metrics import AgeMetrics, age_bins
from .model import AgeRegressor, freeze_for_rrt

N_AGE_BINS = 201  # integer ages 0 .. 200: IMDB-WIKI-DIR trains on ages up to 200


def load_age_checkpoint(
    path: str | Path, device: str = "cpu"
) -> tuple[AgeRegressor, dict[str, Any]]:
    """Rebuild the :class:`AgeRegressor` of a ``best.pt``, return it (eval mode) with the dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"age checkpoint {str(path)!r} does not exist; train a model first "
            "(`ihmr age train`) and pass its run folder's best.pt"
        )
    payload = load_torch_file(path)
    if not isinstance(payload, dict) or payload.get("kind") != "age":
        raise DataError(
            f"{str(path)!r} is not an age model checkpoint (best.pt of `ihmr age train`)"
        )
    m = payload["config"]["model"]
    model = AgeRegressor(m["backbone"], m["width"])
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload


@torch.no_grad()
def predict_head(
    linear: torch.nn.Module, x: torch.Tensor, device: str, chunk: int = 16384
) -> np.ndarray:
    """(N,) predictions of ``linear`` on cached features (N, F)."""
    out = [
        linear(x[i : i + chunk].to(device).float()).reshape(-1).cpu()
        for i in range(0, len(x), chunk)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0)


@torch.no_grad()
def predict_images(
    model: AgeRegressor, dataset: Any, device: str, batch_size: int, workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) predictions and (N,) ages over an image dataset, model in eval mode."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    model.eval()
    preds, ages = [], []
    for x, y in loader:
        preds.append(model(x.to(device)).reshape(-1).float().cpu())
        ages.append(y)
    return torch.cat(preds).numpy(), torch.cat(ages).numpy()


def _val_row(
    cfg: AgeConfig, pred: np.ndarray, ages: np.ndarray, train_ages: np.ndarray
) -> tuple[dict, float, dict]:
    m = AgeMetrics(train_ages, N_AGE_BINS, cfg.many, cfg.few)
    m.update(pred, ages)
    res = m.compute()
    row = {
        "val_bmae": res["overall"]["bmae"],
        "val_mae": res["overall"]["l1"],
        **{f"val_{s}_bmae": res[s]["bmae"] for s in ("many", "medium", "few")},
    }
    score = res["overall"]["bmae" if cfg.select_metric == "bmae" else "l1"]
    return row, score, res


def _start(run: RunDir, objects: dict, generators: dict, resume: bool) -> tuple[int, dict]:
    if resume:
        ckpt = load_checkpoint(run.last, objects, generators=generators)
        return ckpt["epoch"], ckpt["best"]
    return 0, {}


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _epoch_loop(
    cfg: AgeConfig,
    run: RunDir,
    *,
    epochs: int,
    start: int,
    best: dict,
    objects: dict,
    generators: dict,
    batches: Callable[[int], Iterable],
    n_batches: int,
    step_fn: Callable[[Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    evaluate: Callable[[], tuple[np.ndarray, np.ndarray]],
    train_ages: np.ndarray,
    payload: Callable[[int, dict], dict],
    scheduler: Any = None,
    sigma: Callable[[], Any] = lambda: None,
    log: Callable[[str], None] = print,
) -> tuple[list[dict], dict]:
    """Both stages' epochs through :func:`ihmr.training.fit`: train (NaN guard), validate, select,
    log, checkpoint. ``batches(i)`` yields epoch ``i + 1``'s batches. Returns (history, best)."""
    writer = tensorboard_writer(run.root / "tb", cfg.tensorboard)
    sigma_row = lambda: {} if sigma() is None else {"sigma": sigma()}  # noqa: E731

    def train_epoch(epoch: int) -> dict:
        loss = train_steps(
            batches(epoch - 1),
            step_fn,
            optimizer,
            run=run,
            epoch=epoch,
            steps=n_batches,
            description=f"epoch {epoch}/{epochs}",
            progress=cfg.progress,
            fields=sigma_row,
        )
        if scheduler is not None:
            scheduler.step()
        return {"train_loss": loss, "lr": optimizer.param_groups[0]["lr"], **sigma_row()}

    def validate(epoch: int, row: dict) -> tuple[dict, float, Callable[[], dict]]:
        val, score, res = _val_row(cfg, *evaluate(), train_ages)
        return {**row, **val}, score, lambda: payload(epoch, res)

    def report(epoch: int, row: dict) -> None:
        if run.main:
            log(
                f"epoch {epoch}/{epochs}: loss {row['train_loss']:.4g}, "
                f"val bMAE {row['val_bmae']:.3f}, val MAE {row['val_mae']:.3f}"
                + (f", sigma {row['sigma']:.3f}" if "sigma" in row else "")
            )

    try:
        return fit(
            run,
            objects,
            epochs=epochs,
            start=start,
            train_epoch=train_epoch,
            evaluate=validate,
            best=best,
            metric=f"val_{cfg.select_metric}",
            generators=generators,
            writer=writer,
            on_epoch=report,
        )
    finally:
        if writer is not None:
            writer.close()


class _Head(torch.nn.Module):
    """``linear`` and the criterion as one module, so that DDP averages the gradients of both."""

    def __init__(self, linear: torch.nn.Module, criterion: torch.nn.Module) -> None:
        super().__init__()
        self.linear, self.criterion = linear, criterion

    def forward(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.linear(f), y)


def feature_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    rank: int = 0,
    world_size: int = 1,
) -> Callable[[int], Iterable]:
    """``batches(epoch)`` over cached features (N, F) (any float dtype, cast per batch to float32)
    and ages (N,), in a fresh permutation drawn from ``generator`` every epoch.

    Under DDP every rank draws the same permutation (same seed) and keeps its ``rank``-th share
    of each global batch of ``batch_size`` (``tensor_split``), so the ranks together see the
    global batch.
    """

    def batches(epoch: int):
        for idx in iter_batches(len(x), batch_size, generator):
            idx = idx.tensor_split(world_size)[rank]
            idx = idx.to(x.device)  # index_select: ~10x faster than x[idx] on the CPU
            yield x.index_select(0, idx).float(), y.index_select(0, idx)

    return batches


def _payload(
    cfg: AgeConfig, model: AgeRegressor, train_ages: np.ndarray, stage: str, criterion: Any = None
) -> Callable[[int, dict], dict]:
    counts = np.bincount(age_bins(train_ages, N_AGE_BINS), minlength=N_AGE_BINS)

    def make(epoch: int, val: dict) -> dict:
        return {
            "kind": "age",
            "stage": stage,
            "model": unwrap(model).state_dict(),
            "criterion": {} if criterion is None else criterion.state_dict(),
            "config": to_dict(cfg),
            "epoch": epoch,
            "val": val,
            "train_counts": torch.as_tensor(counts),
        }

    return make


def train_vanilla(
    cfg: AgeConfig, resume: bool = False, log: Callable[[str], None] = print
) -> TrainResult:
    """Stage 1: train the whole regressor on the images (``checkpoint``: the selected best.pt)."""
    t0 = time.perf_counter()
    info = init_distributed()
    device = resolve_device(cfg.device)
    _seed_all(cfg.seed)
    csv_path, root = dataset_paths(cfg.data.csv, cfg.data.root)
    table, o = read_age_csv(csv_path, tuple(cfg.data.label_range)), cfg.optim
    train_t = table.subset("train")
    train_ds = make_dataset(train_t, root, cfg.data.img_size, True, cfg.seed, cfg.data.check_images)
    val_ds = make_dataset(
        table.subset("val"), root, cfg.data.img_size, False, check=cfg.data.check_images
    )
    model = AgeRegressor(cfg.model.backbone, cfg.model.width).to(device)
    net: Any = model
    if info.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None
        )
    opt = torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(o.milestones), gamma=o.gamma)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    if info.world_size > 1:
        sampler: Any = torch.utils.data.DistributedSampler(train_ds, seed=cfg.seed)
    else:
        sampler = torch.utils.data.RandomSampler(train_ds, generator=shuffle)
    loader = torch.utils.data.DataLoader(
        train_ds,
        batch_size=max(1, o.batch_size // info.world_size),
        sampler=sampler,
        num_workers=cfg.data.workers,
    )
    run = RunDir(cfg.out)
    run.check_resume(resume)
    run.save_config(cfg)
    objects = {"model": model, "optimizer": opt, "scheduler": sched}
    start, best = _start(run, objects, {"shuffle": shuffle}, resume)
    crit = torch.nn.functional.l1_loss if cfg.loss.kind == "l1" else torch.nn.functional.mse_loss

    def batches(epoch: int):
        train_ds.set_epoch(epoch)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        net.train()
        return loader

    def step_fn(batch):
        x, y = batch
        return crit(net(x.to(device)).reshape(-1), y.to(device))

    def evaluate():
        return predict_images(model, val_ds, device, o.batch_size, cfg.data.workers)

    history, best = _epoch_loop(
        cfg,
        run,
        epochs=o.epochs,
        start=start,
        best=best,
        objects=objects,
        generators={"shuffle": shuffle},
        batches=batches,
        n_batches=len(loader),
        step_fn=step_fn,
        optimizer=opt,
        evaluate=evaluate,
        train_ages=train_t.ages,
        scheduler=sched,
        payload=_payload(cfg, model, train_t.ages, "vanilla"),
        log=log,
    )
    return TrainResult(run.root, run.best, history, best, time.perf_counter() - t0)


def train_rrt(
    cfg: AgeConfig,
    resume: bool = False,
    log: Callable[[str], None] = print,
    init_linear: dict | None = None,
) -> TrainResult:
    """Stage 2: re-train ``linear`` (and sigma) on top of the frozen stage-1 backbone.

    ``init_linear``: a ``linear`` state dict to start from instead of the re-initialised layer
    (a fine-tune from a shared start, :mod:`ihmr.sigma.tasks`)."""
    # looked up per call: tests wrap build_criterion and load_features in their modules
    from .criteria import build_criterion
    from .features import load_features, weights_fingerprint

    r, o = cfg.rrt, cfg.optim
    if not r.pretrained:
        raise ConfigError(
            "rrt.pretrained is empty; set it to the vanilla run's best.pt "
            "(--set rrt.pretrained=runs/age/vanilla/best.pt)"
        )
    t0 = time.perf_counter()
    info = init_distributed()
    device = resolve_device(cfg.device)
    _seed_all(cfg.seed)
    model, stage1 = load_age_checkpoint(r.pretrained, device)
    cfg.model.backbone, cfg.model.width = (
        stage1["config"]["model"]["backbone"],
        stage1["config"]["model"]["width"],
    )
    freeze_for_rrt(model, cfg.seed)
    if init_linear is not None:
        model.linear.load_state_dict(init_linear)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    if r.features:
        feats = load_features(
            r.features, {"backbone": weights_fingerprint(stage1["model"])}, ("train", "val")
        )
        tx, ty = feats["train"]["x"], feats["train"]["y"]
        if device.type == "cuda":
            tx, ty = tx.to(device), ty.to(device)  # resident on the GPU: no host transfer per step
        vx, vy = feats["val"]["x"], feats["val"]["y"].numpy()
        train_ages = feats["train"]["y"].numpy().astype(np.float64)
        n_batches = math.ceil(len(tx) / o.batch_size)
        batches = feature_batches(tx, ty, o.batch_size, shuffle, info.rank, info.world_size)

        def evaluate():
            return predict_head(model.linear, vx, device), vy
    else:
        csv_path, root = dataset_paths(cfg.data.csv, cfg.data.root)
        table = read_age_csv(csv_path, tuple(cfg.data.label_range))
        train_t = table.subset("train")
        train_ds = make_dataset(
            train_t, root, cfg.data.img_size, True, cfg.seed, cfg.data.check_images
        )
        val_ds = make_dataset(
            table.subset("val"), root, cfg.data.img_size, False, check=cfg.data.check_images
        )
        loader = torch.utils.data.DataLoader(
            train_ds,
            batch_size=o.batch_size,
            num_workers=cfg.data.workers,
            sampler=torch.utils.data.RandomSampler(train_ds, generator=shuffle),
        )
        train_ages, n_batches = train_t.ages, len(loader)

        def batches(epoch: int):
            train_ds.set_epoch(epoch)
            model.backbone.eval()  # frozen: BatchNorm keeps the stage-1 statistics
            for x, y in loader:
                x, y = (
                    x.tensor_split(info.world_size)[info.rank],
                    y.tensor_split(info.world_size)[info.rank],
                )
                with torch.no_grad():
                    f = model.features(x.to(device))
                yield f, y

        def evaluate():
            return predict_images(model, val_ds, device, o.batch_size, cfg.data.workers)

    criterion = build_criterion(cfg.loss, train_ages, tuple(cfg.data.label_range), cfg.seed).to(
        device
    )
    if info.world_size > 1 and hasattr(criterion.inner, "gather"):
        criterion.inner.gather = (
            True  # BMC: every rank's predictions meet the global batch's targets
        )
    sigmas = noise_parameters(criterion)
    groups = [
        {"params": list(model.linear.parameters()), "lr": o.lr, "weight_decay": o.weight_decay}
    ]
    if sigmas:
        groups.append({"params": sigmas, "lr": o.sigma_lr, "weight_decay": 0.0})
    opt = torch.optim.Adam(groups)
    sched = None
    if o.milestones:  # the step decay of stage 1 on linear's rate; sigma's rate stays constant
        decay = lambda e: o.gamma ** sum(e >= m for m in o.milestones)  # noqa: E731
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, [decay] + [lambda e: 1.0] * (len(groups) - 1)
        )
    run = RunDir(cfg.out)
    run.check_resume(resume)
    run.save_config(cfg)
    objects = {
        "linear": model.linear,
        "criterion": criterion,
        "optimizer": opt,
        **({"scheduler": sched} if sched is not None else {}),
    }
    start, best = _start(run, objects, {"shuffle": shuffle}, resume)

    head: Any = _Head(model.linear, criterion)
    if (
        info.world_size > 1
    ):  # one DDP module over linear and sigma: both get rank-averaged gradients
        head = torch.nn.parallel.DistributedDataParallel(
            head, device_ids=[info.local_rank] if device.type == "cuda" else None
        )

    def step_fn(batch):
        f, y = batch
        loss = head(f, y.to(f.device))
        if info.world_size > 1:  # DDP averages rank gradients: weigh each rank's mean by its share
            n = torch.tensor(float(len(f)), device=f.device)
            total = n.clone()
            torch.distributed.all_reduce(total)
            loss = loss * (n * info.world_size / total)
        return loss

    history, best = _epoch_loop(
        cfg,
        run,
        epochs=o.epochs,
        start=start,
        best=best,
        objects=objects,
        generators={"shuffle": shuffle},
        batches=batches,
        n_batches=n_batches,
        step_fn=step_fn,
        optimizer=opt,
        evaluate=evaluate,
        train_ages=train_ages,
        scheduler=sched,
        payload=_payload(cfg, model, train_ages, "rrt", criterion),
        sigma=lambda: criterion.sigma,
        log=log,
    )
    return TrainResult(run.root, run.best, history, best, time.perf_counter() - t0)


def train(cfg: AgeConfig, resume: bool = False, log: Callable[[str], None] = print) -> TrainResult:
    """Run the stage named by ``cfg.stage``; the result's ``checkpoint`` is the run's ``best.pt``
    (the epoch selected on validation)."""
    if cfg.few > cfg.many:  # checked before any work (the metrics would refuse it after an epoch)
        raise ConfigError(
            f"few ({cfg.few}) must not exceed many ({cfg.many}): a few-shot age has "
            "fewer than `few` training images, a many-shot one more than `many`"
        )
    if cfg.stage == "vanilla" and cfg.loss.kind not in STAGE1_LOSSES:
        raise ConfigError(
            f"stage vanilla trains the whole network with loss.kind l1 or mse, got "
            f"{cfg.loss.kind!r}; the balanced and reweighted losses are stage 2's "
            "(set stage=rrt and rrt.pretrained)"
        )
    return (train_vanilla if cfg.stage == "vanilla" else train_rrt)(cfg, resume, log)
