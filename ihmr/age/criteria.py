"""Stage-2 (RRT) age losses: Balanced MSE (BMC / GAI / BNI), reweighting baselines, plain MSE/L1.

All take predictions (B, 1) or (B,) and ages (B,) in years. Priors come from the *training* ages:

- GAI: a K-component 1-D GMM (``ihmr.priors.fit_gmm``; K = 8 in the paper).
- BNI: a histogram over integer-age bins (edges ``lo - 0.5 .. hi + 0.5``, so the bin centres are
  the integer ages), optionally LDS-smoothed; the bin densities are BNI's ``w_b`` (Eq. 3.16).
- inverse / sqrt_inv: per-sample weights ``p(y)^-1`` / ``p(y)^-1/2`` of the (LDS-smoothed, if
  ``lds``) histogram, clamped as in DIR and normalised to mean 1 over the training set; the loss is
  the weighted MSE. With ``lds`` this is the RRT+LDS baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..losses import BMCLoss, BNILoss, GAILoss, weighted_mse_loss
from ..priors import fit_gmm, histogram_prior, reweighting_weights
from .config import RRT_LOSSES, LossConfig


def age_bin_edges(label_range: tuple[float, float]) -> np.ndarray:
    """Integer-age bins: edges ``lo - 0.5, lo + 0.5, ..., hi + 0.5`` (centres ``lo .. hi``)."""
    lo, hi = int(np.floor(label_range[0])), int(np.ceil(label_range[1]))
    return np.arange(lo, hi + 2, dtype=np.float64) - 0.5


def _histogram(train_ages: np.ndarray, cfg: LossConfig, label_range: tuple[float, float]) -> Any:
    lds = {"kind": cfg.lds_kernel, "ks": cfg.lds_ks, "sigma": cfg.lds_sigma} if cfg.lds else None
    return histogram_prior(train_ages, age_bin_edges(label_range), lds=lds)


class AgeCriterion(nn.Module):
    """``forward(pred, ages) -> loss``; ``inner`` holds the Balanced MSE module (and sigma).

    For the reweighting losses, ``bin_weight`` (Nb,) is the weight of each integer-age bin
    (constant within a bin), looked up per batch from the ages.
    """

    def __init__(
        self,
        kind: str,
        inner: nn.Module | None = None,
        bin_weight: np.ndarray | None = None,
        first_age: int = 0,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.inner = inner
        self.first_age = first_age
        if bin_weight is not None:
            self.register_buffer("bin_weight", torch.as_tensor(bin_weight, dtype=torch.float32))
        else:
            self.bin_weight = None

    @property
    def sigma(self) -> float | None:
        s = getattr(self.inner, "noise_sigma", None)
        return None if s is None else float(s.detach())

    def forward(self, pred: torch.Tensor, ages: torch.Tensor) -> torch.Tensor:
        p = pred.reshape(-1)
        y = ages.reshape(-1).to(p.dtype)
        if self.kind == "mse":
            return torch.nn.functional.mse_loss(p, y)
        if self.kind == "l1":
            return torch.nn.functional.l1_loss(p, y)
        if self.bin_weight is not None:
            idx = (torch.floor(y + 0.5).long() - self.first_age).clamp(0, len(self.bin_weight) - 1)
            return weighted_mse_loss(p, y, self.bin_weight.to(p.device)[idx])
        return self.inner(p, y)


def build_criterion(
    cfg: LossConfig, train_ages: Any, label_range: tuple[float, float], seed: int = 0
) -> AgeCriterion:
    """The stage-2 loss named by ``cfg.kind`` with its prior fitted on ``train_ages`` (N,)."""
    if cfg.kind not in RRT_LOSSES:
        raise ConfigError(f"loss.kind must be one of {list(RRT_LOSSES)}, got {cfg.kind!r}")
    ages = np.asarray(train_ages, dtype=np.float64).reshape(-1)
    kw = dict(init_noise_sigma=cfg.init_noise_sigma, learn_noise=cfg.learn_noise)
    if cfg.kind in ("mse", "l1"):
        return AgeCriterion(cfg.kind)
    if cfg.kind == "bmc":
        return AgeCriterion("bmc", BMCLoss(**kw))
    if cfg.kind == "gai":
        prior = fit_gmm(ages[:, None], cfg.gmm_components, seed=seed)
        return AgeCriterion("gai", GAILoss(prior, **kw))
    hist = _histogram(ages, cfg, label_range)
    if cfg.kind == "bni":
        return AgeCriterion("bni", BNILoss(hist.centers, hist.density, **kw))

    clip = tuple(cfg.reweight_clip) if cfg.reweight_clip is not None else None
    w = reweighting_weights(ages, hist, cfg.kind, clip)
    bins = hist.bin_index(ages)
    # every sample of a bin has the same weight; bins without training ages are never looked up
    bin_weight = np.ones(hist.n_bins)
    bin_weight[bins] = w
    return AgeCriterion(cfg.kind, None, bin_weight, int(round(hist.centers[0])))
