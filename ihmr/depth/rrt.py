"""Regressor re-training for depth: Hu et al.'s refinement R re-trained on cached features.

The depth analogue of the age benchmark's RRT (and of the paper's SPIN-RT, Table 3): a network
trained with MSE is frozen up to the input of its refinement R (decoder D and multi-scale fusion,
``HuDepthNet.refine_input``), those (B, 2 c(64), h, w) features are computed once for the train,
validation and test images, and R alone (two 5x5 conv-BN-ReLU and a 5x5 conv to depth) is trained
from a fresh initialisation with each per-pixel loss (:class:`ihmr.depth.losses.DepthLoss`).
Only R sees the loss, so the comparison between losses is not blurred by the encoder's own
training noise, and one run takes seconds on a CPU.

``head="pixel"`` (the demo's default) replaces R by a per-pixel regressor on the input image
(:func:`ihmr.depth.model.pixel_regressor`) at the input resolution, twice the features' one,
trained on random batches of training pixels. The demo's haze cue is per pixel by design, and at
the features' resolution a perfect depth map already loses delta1 to blurred edges (0.957 on the
demo's balanced test pixels, against 0.981 at the input resolution).

Feature file (``.npz``): ``{split}_x`` (N, C, h, w) float32 features; ``{split}_img`` (N, 3, H, W)
the network's input images; ``train_y`` (N, 1, h, w) and ``train_y_img`` (N, 1, H, W) training
targets at the features' and at the input resolution (bilinear, as the training targets); for
``val`` and ``test`` the evaluated pixels of the full 228 x 304 crop as flat indices
``{split}_idx`` into (N, 228, 304) and depths ``{split}_t`` (test: the balanced mask; val: a seeded
sample of the pixels >= 0.7 m); ``fingerprint`` (JSON: a hash of the frozen weights and of the
split files), so features of another model or dataset are rejected.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, NonFiniteError, check_at_least, check_choice
from ..io import save_npz
from ..priors import fit_gmm
from . import data as D
from .data import CROP_WH, N_BINS, depth_bins
from .evaluate import load_depth_model
from .losses import DepthLoss
from .metrics import DepthMetrics
from .model import pixel_regressor, refinement, upsample_to
from .train import LossConfig

VAL_PIXELS_PER_IMAGE = 4000


@dataclass
class HeadConfig:
    """Training of R on cached features (Adam, cosine decay of the learning rate to 0)."""

    loss: LossConfig = field(default_factory=LossConfig)
    width: float = 0.125
    """Channel multiplier of R (must match the frozen network's)."""
    head: str = "pixel"
    """``pixel``: a per-pixel regressor on the image at the input resolution
    (:func:`ihmr.depth.model.pixel_regressor`), trained on random pixels; ``hu``: Hu et al.'s R on
    the cached features, at their resolution."""
    pixel_batch: int = 2048
    """Training pixels per step of the ``pixel`` head. 3 epochs of 2,048 give 1,290 steps on the
    demo; with 8,192 per step the far-depth predictions varied between seeds (few-shot balanced
    RMSE 0.68-0.88 m for MSE), with 2,048 they agree to 0.01 m."""
    lr: float = 3e-3
    weight_decay: float = 1e-4
    sigma_lr: float = 1e-2
    """Adam learning rate of sigma when learnable (``loss.learn_noise``)."""
    epochs: int = 10
    batch_size: int = 16
    seed: int = 0
    """Initialisation of R and batch order."""
    select: str = "last"
    """``last``: the weights after the last epoch (the learning rate has decayed to 0, so they
    move little); ``val``: the epoch with the lowest validation balanced RMSE."""


def _hash_state(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _hash_files(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def extract_head_features(
    checkpoint: str | Path, out_path: str | Path, batch_size: int = 16, seed: int = 0
) -> Path:
    """Run the frozen network of ``checkpoint`` (a :func:`train_depth` best.pt) up to R's input
    over the train / val / test splits of its dataset; write the feature file (module docstring)."""
    model, cfg = load_depth_model(checkpoint, "cpu")
    layout = D.Layout(cfg.data.root)
    kw = dict(
        augment=False, input_wh=cfg.data.input_wh, val_fraction=cfg.data.val_fraction, seed=cfg.seed
    )
    rng = np.random.default_rng(seed)
    arrays: dict[str, Any] = {}
    with torch.no_grad():
        for split in ("train", "val", "test"):
            ds = D.NYUD2DIR(layout, split, **kw)
            xs, imgs, ys, ys_img, idx, ts = [], [], [], [], [], []
            for s in range(0, len(ds), batch_size):
                items = [ds[i] for i in range(s, min(s + batch_size, len(ds)))]
                img = torch.stack([it["image"] for it in items])
                xs.append(model.refine_input(img).numpy())
                imgs.append(img.numpy())
                for k, it in enumerate(items):
                    depth, mask = it["depth"][0].numpy(), it["mask"].numpy()
                    if split == "train":
                        ys.append(depth[None])
                        full = np.ascontiguousarray(ds.load(s + k)[1], dtype=np.float32)
                        ys_img.append(D.resize(full, cfg.data.input_wh)[None])
                        continue
                    flat = np.flatnonzero(mask)
                    if split == "val" and flat.size > VAL_PIXELS_PER_IMAGE:
                        flat = np.sort(rng.choice(flat, VAL_PIXELS_PER_IMAGE, replace=False))
                    idx.append(flat + (s + k) * mask.size)
                    ts.append(depth.ravel()[flat])
            arrays[f"{split}_x"] = np.concatenate(xs).astype(np.float32)
            arrays[f"{split}_img"] = np.concatenate(imgs).astype(np.float32)
            if split == "train":
                arrays["train_y"] = np.stack(ys).astype(np.float32)
                arrays["train_y_img"] = np.stack(ys_img).astype(np.float32)
            else:
                arrays[f"{split}_idx"] = np.concatenate(idx).astype(np.int64)
                arrays[f"{split}_t"] = np.concatenate(ts).astype(np.float32)
    fp = {
        "weights": _hash_state(model.state_dict()),
        "data": _hash_files(
            [
                layout.path(layout.train_csv),
                layout.path(layout.test_csv),
                layout.path(layout.test_mask),
            ]
        ),
        "width": cfg.model.width,
        "root": str(cfg.data.root),
    }
    arrays["fingerprint"] = np.array(json.dumps(fp, sort_keys=True))
    return save_npz(out_path, **arrays)


def load_head_features(path: str | Path) -> dict:
    """The feature file as tensors (x, train_y) and arrays (idx, t), plus ``fingerprint``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"feature file {str(path)!r} not found")
    with np.load(path, allow_pickle=False) as z:
        out: dict[str, Any] = {"fingerprint": json.loads(str(z["fingerprint"]))}
        for k in z.files:
            if k != "fingerprint":
                out[k] = torch.from_numpy(z[k]) if k.endswith(("_x", "_y", "_img")) else z[k]
    return out


def make_head(cfg: HeadConfig):
    """A fresh R for ``cfg.head``."""
    check_choice(cfg.head, ("pixel", "hu"), "head")
    return pixel_regressor() if cfg.head == "pixel" else refinement(cfg.width)


def head_inputs(feats: dict, cfg: HeadConfig, split: str):
    """R's input for ``split``: the images (``pixel`` head) or the cached features (``hu``)."""
    key = f"{split}_img" if cfg.head == "pixel" else f"{split}_x"
    if key not in feats:
        raise DataError(f"the feature file has no {key!r}; extract it again")
    return feats[key]


def head_targets(feats: dict, cfg: HeadConfig):
    """R's training targets: at the input resolution (``pixel`` head), else the features'."""
    key = "train_y_img" if cfg.head == "pixel" else "train_y"
    if key not in feats:
        raise DataError(f"the feature file has no {key!r}; extract it again")
    return feats[key]


def predict_pixels(head, x, idx: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Depth of the evaluated pixels: R on its input (N, C, h, w) (:func:`head_inputs`), bilinear
    upsampling to the 228 x 304 crop (as the DIR evaluation), gathered at the flat indices
    ``idx`` -> (P,)."""
    out = np.empty(idx.size, np.float64)
    per = CROP_WH[0] * CROP_WH[1]
    head.eval()
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            lo, hi = np.searchsorted(idx, [s * per, min(s + batch_size, len(x)) * per])
            if hi == lo:
                continue
            pred = upsample_to(head(x[s : s + batch_size]), (CROP_WH[1], CROP_WH[0]))
            out[lo:hi] = pred.reshape(-1).numpy()[idx[lo:hi] - s * per]
    return out


def pixel_metrics(pred: np.ndarray, target: np.ndarray, shots) -> tuple[dict, np.ndarray]:
    """(DepthMetrics.compute() of the pixels, per-bin RMSE (N_BINS,))."""
    acc = DepthMetrics(shots)
    acc.update(pred, target, np.ones(pred.shape, bool))
    return acc.compute(), acc.per_bin()["rmse"]


def train_head(
    feats: dict, cfg: HeadConfig, shots, gmm=None, counts=None, log=lambda s: None
) -> dict:
    """Train R with ``cfg.loss`` on cached features; keep the last epoch or the one with the lowest
    validation balanced RMSE (``cfg.select``); return {"test": metrics, "per_bin_rmse":
    (N_BINS,), "best_epoch", "val_brmse", "sigma", "seconds", "state": R's weights}.

    ``counts`` (N_BINS,) training pixel counts and ``gmm`` (fitted 1-D prior) are the BNI /
    reweighting and GAI priors; computed from ``feats["train_y"]`` by :func:`head_priors` if absent.
    """
    check_choice(cfg.select, ("last", "val"), "select")
    check_at_least(cfg.epochs, 1, "epochs")
    check_at_least(cfg.batch_size, 1, "batch_size")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    lc = cfg.loss
    if counts is None or (lc.kind == "gai" and gmm is None):
        counts, gmm = head_priors(head_targets(feats, cfg), lc, cfg.seed)
    criterion = DepthLoss.from_config(lc, counts, gmm)
    head = make_head(cfg)
    groups = [{"params": head.parameters(), "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if lc.learn_noise:
        groups.append({"params": criterion.parameters(), "lr": cfg.sigma_lr, "weight_decay": 0.0})
    opt = torch.optim.Adam(groups)
    x, y = head_inputs(feats, cfg, "train"), head_targets(feats, cfg)
    per_pixel = cfg.head == "pixel"
    if per_pixel:  # one row per training pixel with ground truth: (P, C) and (P,)
        x, y = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]), y.reshape(-1)
        keep = y >= lc.min_depth
        x, y = x[keep].contiguous(), y[keep].contiguous()
    batch = cfg.pixel_batch if per_pixel else cfg.batch_size
    check_at_least(batch, 1, "pixel_batch" if per_pixel else "batch_size")
    n = len(x)
    steps_per_epoch = max(1, n // batch)
    total = steps_per_epoch * cfg.epochs
    cosine = lambda s: 0.5 * (1 + math.cos(math.pi * s / total))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [cosine] + [lambda s: 1.0] * (len(groups) - 1))
    gen = torch.Generator().manual_seed(cfg.seed)
    best = {"val_brmse": float("inf"), "epoch": -1, "state": None}
    for epoch in range(cfg.epochs):
        head.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(steps_per_epoch):
            b = perm[i * batch : (i + 1) * batch]
            if per_pixel:  # the pixels as a (1, C, 1, B) image
                loss = criterion(head(x[b].T[None, :, None]), y[b].view(1, 1, 1, -1))
            else:
                loss = criterion(head(x[b]), y[b])
            if not torch.isfinite(loss):
                raise NonFiniteError(
                    f"non-finite {lc.kind} loss in epoch {epoch + 1}, step {i} of "
                    "R's training; lower the learning rate"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        val, _ = pixel_metrics(
            predict_pixels(head, head_inputs(feats, cfg, "val"), feats["val_idx"]),
            feats["val_t"],
            shots,
        )
        brmse = val["balanced"]["overall"]["rmse"]
        log(f"  epoch {epoch + 1}/{cfg.epochs}: val bRMSE {brmse:.3f} m")
        if cfg.select == "last" or brmse < best["val_brmse"]:
            best = {
                "val_brmse": brmse,
                "epoch": epoch,
                "state": {k: v.clone() for k, v in head.state_dict().items()},
            }
    head.load_state_dict(best["state"])
    test, per_bin = pixel_metrics(
        predict_pixels(head, head_inputs(feats, cfg, "test"), feats["test_idx"]),
        feats["test_t"],
        shots,
    )
    return {
        "test": test,
        "per_bin_rmse": per_bin,
        "best_epoch": best["epoch"],
        "val_brmse": best["val_brmse"],
        "sigma": float(criterion.sigma),
        "seconds": round(time.perf_counter() - t0, 1),
        "state": best["state"],
    }


def head_priors(train_y, lc: LossConfig, seed: int = 0, gmm_pixels: int = 200_000):
    """(bin counts (N_BINS,), GMM or None) of the training target pixels >= ``lc.min_depth``."""
    d = np.asarray(train_y, dtype=np.float64).ravel()
    d = d[d >= lc.min_depth]
    counts = np.bincount(depth_bins(d), minlength=N_BINS)
    gmm = None
    if lc.kind == "gai":
        gmm = fit_gmm(d, lc.gmm_components, seed=seed, max_samples=gmm_pixels)
    return counts, gmm
