"""Training of the depth network on NYUD2-DIR (or the demo) with a per-pixel loss.

Protocol (paper App. B.3, DIR): Adam lr 1e-4, weight decay 1e-4, x0.1 every 5 epochs, batch 32,
10 epochs (the paper: 20). sigma, when learnable, has its own parameter group that the schedule
does not touch. Model selection uses the balanced RMSE on the validation scenes carved from the
training set (never the test set). The run folder (``ihmr.runs``) holds config.yaml,
metrics.jsonl/csv (epochs numbered from 1), last.pt (resumable, every epoch), best.pt and the
priors (prior_bins.npz, prior_gmm.npz).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch

from .. import runs, training
from ..config import to_dict
from ..priors import BinPrior, fit_gmm
from . import data as D
from .data import CROP_WH, MIN_DEPTH, N_BINS, depth_bins
from .losses import DepthLoss
from .metrics import DepthMetrics
from .model import HuDepthNet, upsample_to


@dataclass
class DataConfig:
    root: str = "demo/nyud2"
    """Folder of the data set, relative to the working directory, holding data/nyu2_train.csv,
    data/nyu2_test.csv and data/test_balanced_mask.npy; those files and the image paths in the
    CSVs are read from here (the one path rule of :mod:`ihmr.config`)."""
    input_wh: tuple[int, int] = CROP_WH
    """Network input (W, H); the 304 x 228 crop is resized to it (smaller only for the CPU demo)."""
    val_fraction: float = 0.05
    """Share of training *scenes* held out for model selection."""
    augment: bool = True
    """DIR training augmentation (flip, rotation, lighting, colour jitter)."""
    workers: int = 0
    """DataLoader worker processes."""
    prior_pixels_per_image: int = 2000
    """Random valid pixels per training image kept for the GMM fit."""


@dataclass
class ModelConfig:
    width: float = 1.0
    """Decoder / fusion / refinement channel multiplier (1.0 = Hu et al.)."""
    encoder_layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    """Bottleneck blocks per encoder stage ((3, 4, 6, 3) = ResNet-50)."""
    encoder_width: float = 1.0
    """Encoder channel multiplier (1.0 = the shared ResNet-50)."""


@dataclass
class LossConfig:
    kind: Literal["mse", "inverse", "sqrt_inv", "bni", "gai", "bmc"] = "mse"
    """Per-pixel loss: mse; inverse / sqrt_inv: MSE reweighted by the depth bin's count^-1 /
    count^-1/2; bni / gai / bmc: Balanced MSE."""
    init_noise_sigma: float = 1.0
    """Noise sigma in metres (fixed at 1 for NYUD2-DIR)."""
    learn_noise: bool = False
    """Learn sigma (own parameter group at ``optim.sigma_lr``, not scheduled)."""
    lds: bool = False
    """LDS-smooth the bin counts (inverse, sqrt_inv, bni)."""
    lds_kernel: Literal["gaussian", "triangular", "laplace"] = "gaussian"
    """LDS kernel (DIR: gaussian)."""
    lds_ks: int = 5
    """LDS kernel size in 0.1 m bins (odd; DIR: 5)."""
    lds_sigma: float = 2.0
    """LDS kernel width in bins (DIR: 2)."""
    gmm_components: int = 16
    """GMM components of the GAI prior, fitted on the training pixel depths in the run."""
    chunk_pixels: int = 32768
    """Pixels per chunk of the balancing term (memory bound)."""
    min_depth: float = MIN_DEPTH
    """Pixels with smaller ground truth are ignored (metres)."""


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 1e-4
    epochs: int = 10
    decay_every: int = 5
    """Multiply the lr by ``gamma`` every this many epochs."""
    gamma: float = 0.1
    batch_size: int = 32
    max_steps_per_epoch: Optional[int] = None
    """Cap on steps per epoch (smoke tests); None = the whole training split."""
    sigma_lr: float = 1e-2
    """Adam learning rate of sigma when learnable (``loss.learn_noise``)."""


@dataclass
class DepthTrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    out: str = "runs/depth/mse"
    """Run folder."""
    seed: int = 0
    device: str = "auto"
    """"auto" (CUDA if available), "cpu", "cuda", "cuda:1" ..."""
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""


def build_model(cfg: ModelConfig):
    return HuDepthNet(cfg.width, cfg.encoder_layers, cfg.encoder_width)


def training_priors(ds, cfg: DepthTrainConfig, seed: int = 0):
    """Pixel counts per bin (N_BINS,) and a pixel subsample of the training depths (>= min depth),
    read without augmentation at the training target resolution."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(N_BINS, np.int64)
    sample = []
    aug = ds.augment
    ds.augment = False
    try:
        for i in range(len(ds)):
            d = ds[i]["depth"].numpy().ravel()
            d = d[d >= cfg.loss.min_depth]
            counts += np.bincount(depth_bins(d), minlength=N_BINS)
            k = min(cfg.data.prior_pixels_per_image, d.size)
            sample.append(rng.choice(d, size=k, replace=False))
    finally:
        ds.augment = aug
    return counts, np.concatenate(sample)


def evaluate_loader(model, loader, device, shots) -> dict:
    """DepthMetrics over a loader whose targets are the full-resolution crops."""
    acc = DepthMetrics(shots)
    model.eval()
    with torch.no_grad():
        for batch in loader:
            pred = upsample_to(model(batch["image"].to(device)), batch["depth"].shape[-2:])
            acc.update(pred[:, 0].cpu(), batch["depth"][:, 0], batch["mask"])
    return acc.compute()


def train_depth(cfg: DepthTrainConfig, init_model: dict | None = None, resume: bool = False):
    """Train one model; returns a :class:`~ihmr.training.TrainResult` whose ``checkpoint`` is
    ``best.pt`` (the epoch with the lowest validation balanced RMSE, ``best``).

    ``init_model``: a model state dict to start from (a fine-tune from a shared start,
    :mod:`ihmr.sigma.tasks`) instead of the fresh initialisation. ``resume``: continue the run in
    ``cfg.out`` from its ``last.pt`` (``ihmr depth train --resume RUN_DIR``); without it a folder
    that already holds a run is refused (:meth:`ihmr.runs.RunDir.check_resume`)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = runs.resolve_device(cfg.device)
    layout = D.Layout(cfg.data.root)
    kw = dict(input_wh=cfg.data.input_wh, val_fraction=cfg.data.val_fraction, seed=cfg.seed)
    train_ds = D.NYUD2DIR(layout, "train", augment=cfg.data.augment, **kw)
    val_ds = D.NYUD2DIR(layout, "val", augment=False, **kw)
    shots = D.load_shots(layout.path(layout.shots))
    run = runs.RunDir(cfg.out)  # created only once the data checked out
    run.check_resume(resume)
    run.save_config(cfg)
    counts, sample = training_priors(train_ds, cfg, cfg.seed)
    edges = np.linspace(0.0, N_BINS * D.BIN_WIDTH, N_BINS + 1)
    BinPrior(edges, counts.astype(np.float64), metadata={"what": "training pixel depths"}).save(
        Path(cfg.out) / "prior_bins.npz"
    )
    gmm = None
    if cfg.loss.kind == "gai":
        gmm = fit_gmm(sample, cfg.loss.gmm_components, seed=cfg.seed, max_samples=200_000)
        gmm.save(Path(cfg.out) / "prior_gmm.npz")
    lc = cfg.loss
    criterion = DepthLoss.from_config(lc, counts, gmm).to(device)
    model = build_model(cfg.model).to(device)
    if init_model is not None:
        model.load_state_dict(init_model)
    groups = [
        {"params": model.parameters(), "lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay}
    ]
    if lc.learn_noise:
        groups.append(
            {"params": criterion.parameters(), "lr": cfg.optim.sigma_lr, "weight_decay": 0.0}
        )
    opt = torch.optim.Adam(groups)
    step_decay = lambda e: cfg.optim.gamma ** (e // cfg.optim.decay_every)  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, [step_decay] + [lambda e: 1.0] * (len(groups) - 1)
    )  # sigma's lr is not scheduled
    gen = torch.Generator().manual_seed(cfg.seed)
    objects = {"model": model, "loss": criterion, "optim": opt, "sched": sched}
    start, best = 0, {}
    if resume:
        ck = runs.load_checkpoint(run.last, objects, generators={"shuffle": gen})
        start, best = ck["epoch"], dict(ck["best"])
    loader = torch.utils.data.DataLoader(
        train_ds,
        cfg.optim.batch_size,
        shuffle=True,
        generator=gen,
        num_workers=cfg.data.workers,
        drop_last=len(train_ds) > cfg.optim.batch_size,
    )
    val_loader = torch.utils.data.DataLoader(
        val_ds, cfg.optim.batch_size, num_workers=cfg.data.workers
    )
    t0 = time.perf_counter()
    n_steps = min(len(loader), cfg.optim.max_steps_per_epoch or len(loader))

    def train_epoch(epoch: int) -> dict:
        train_ds.set_epoch(epoch - 1)
        model.train()
        loss = training.train_steps(
            loader,
            lambda b: criterion(model(b["image"].to(device)), b["depth"].to(device)),
            opt,
            run=run,
            epoch=epoch,
            steps=n_steps,
            description=f"epoch {epoch}/{cfg.optim.epochs}",
        )
        lr = opt.param_groups[0]["lr"]  # the rate this epoch trained with
        sched.step()
        return {"train_loss": loss, "lr": lr}

    def validate(epoch: int, row: dict):
        val = evaluate_loader(model, val_loader, device, shots)
        row = {
            **row,
            "val_rmse": val["overall"]["rmse"],
            "val_brmse": val["balanced"]["overall"]["rmse"],
            "sigma": float(criterion.sigma),
            "seconds": round(time.perf_counter() - t0, 1),
            **{f"val_rmse_{s}": val[s]["rmse"] for s in ("many", "medium", "few") if val.get(s)},
        }
        return (
            row,
            row["val_brmse"],
            lambda: {
                "state": {"model": model.state_dict(), "loss": criterion.state_dict()},
                "extra": {"config": _cfg_dict(cfg)},
                "epoch": epoch,
                "kind": "depth",
            },
        )

    history, best = training.fit(
        run,
        objects,
        epochs=cfg.optim.epochs,
        start=start,
        train_epoch=train_epoch,
        evaluate=validate,
        best=best,
        metric="val_brmse",
        generators={"shuffle": gen},
        extra={"config": _cfg_dict(cfg)},
    )
    return training.TrainResult(
        run.root, run.best, history, best, round(time.perf_counter() - t0, 1)
    )


def _cfg_dict(cfg: DepthTrainConfig) -> dict:
    return to_dict(cfg)
