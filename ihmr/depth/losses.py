"""Per-pixel losses for depth: MSE, reweighted MSE, and Balanced MSE (BNI, GAI, BMC).

Every loss acts on the pixels whose ground truth is at least ``min_depth`` (0.7 m, the NYUD2-DIR
protocol), flattened to labels of shape (P,), P up to B x 114 x 152 (138,624 at batch 8):

- ``mse``: mean (p - y)^2 over the valid pixels.
- ``inverse`` / ``sqrt_inv``: mean w(y) (p - y)^2 with w = (smoothed) bin count^-1 or ^-1/2 of the
  0.1 m depth bin, normalised to mean 1 over the *training pixels* (``lds`` smooths the counts
  first).
- ``bni``: Balanced MSE with the 100-bin histogram prior (paper Eq. 3.16).
- ``gai``: Balanced MSE with a 16-component 1-D GMM prior of the pixel depths (Eq. 3.12).
- ``bmc``: Balanced MSE with batch Monte-Carlo (Eq. 3.13) over random groups of ``chunk`` pixels
  (the full P x P matrix is out of reach; the paper itself prefers BNI/GAI for depth because
  neighbouring pixels are dependent).

The maths is the loss library's (:mod:`ihmr.losses`); this module only selects the pixels and
bounds memory. BNI needs a (P, 100) logit matrix, GAI (P, 16): 55 MB and 9 MB at P = 138k in
float32, and autograd keeps a few such matrices. Above ``chunk_pixels`` (default 32,768: a
13 MB BNI matrix) the pixels are processed in chunks under activation checkpointing, so only one
chunk's matrices are alive at a time (forward, and again in backward; a small custom autograd
function, :class:`_ChunkedSum`); the result is the exact mean over all pixels. sigma is fixed at 1
by default (paper Sec. 4.2.3), learnable on request.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ShapeError, check_choice, check_positive
from ..losses.bmc import bmc_loss
from ..losses.bni import bni_loss
from ..losses.gai import PreparedGMM, gai_loss, prepare_gmm
from ..priors import lds_kernel, smooth_counts
from ..priors import lds_kernel as make_kernel
from .data import BIN_WIDTH, MIN_DEPTH, N_BINS

KINDS = ("mse", "inverse", "sqrt_inv", "bni", "gai", "bmc")
REWEIGHTED = ("inverse", "sqrt_inv")
DEFAULT_CHUNK = 32768


def valid_pixels(pred: torch.Tensor, target: torch.Tensor, min_depth: float = MIN_DEPTH):
    """Flatten the pixels with ``target >= min_depth``: (B, 1, H, W) x2 -> (P,), (P,)."""
    if pred.shape != target.shape:
        raise ShapeError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}; upsample the prediction to the target first"
        )
    m = target >= min_depth
    return pred[m], target[m]


class _ChunkedSum(torch.autograd.Function):
    """sum_c fn(p_c, y_c, v) over pixel chunks, recomputing each chunk in backward.

    A hand-rolled activation checkpoint: forward keeps only (P,) inputs, backward rebuilds one
    chunk's graph at a time, so the largest live intermediate is (chunk x components).
    """

    @staticmethod
    def forward(ctx, fn, chunk, p, y, v):  # noqa: D102
        ctx.fn, ctx.chunk = fn, chunk
        ctx.save_for_backward(p, y, v)
        total = p.new_zeros(())
        for s in range(0, p.numel(), chunk):
            total = total + fn(p[s : s + chunk], y[s : s + chunk], v)
        return total

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        p, y, v = ctx.saved_tensors
        gp = torch.zeros_like(p) if ctx.needs_input_grad[2] else None
        gv = torch.zeros_like(v) if ctx.needs_input_grad[4] else None
        for s in range(0, p.numel(), ctx.chunk):
            with torch.enable_grad():
                pc = p[s : s + ctx.chunk].detach().requires_grad_(gp is not None)
                vc = v.detach().requires_grad_(gv is not None)
                out = ctx.fn(pc, y[s : s + ctx.chunk], vc)
                wrt = [t for t in (pc, vc) if t.requires_grad]
                grads = list(torch.autograd.grad(out, wrt)) if wrt else []
            if gp is not None:
                gp[s : s + ctx.chunk] = g * grads.pop(0)
            if gv is not None:
                gv += g * grads.pop(0)
        return None, None, gp, None, gv


def _chunked_sum(fn, p: torch.Tensor, y: torch.Tensor, v: torch.Tensor, chunk: int) -> torch.Tensor:
    """sum over chunks of ``fn(p_c, y_c, v)`` (each a 0-d sum); direct when one chunk suffices."""
    if p.numel() <= chunk or not (p.requires_grad or v.requires_grad):
        return sum(
            (fn(p[s : s + chunk], y[s : s + chunk], v) for s in range(0, p.numel(), chunk)),
            p.new_zeros(()),
        )
    return _ChunkedSum.apply(fn, chunk, p, y.detach(), v)


def reweight_table(
    counts, mode: str = "inverse", lds: bool = False, kernel: np.ndarray | None = None
) -> np.ndarray:
    """Per-bin pixel weights (N_BINS,) ~ count^-1 (``inverse``) or ^-1/2 (``sqrt_inv``), with the
    counts LDS-smoothed first if asked (``kernel``: an :func:`ihmr.priors.lds_kernel` window;
    default gaussian, ks 5, sigma 2), normalised so the mean weight over the training pixels is 1.
    Empty bins get the largest weight (they hold no training pixel)."""
    check_choice(mode, REWEIGHTED, "reweighting kind")
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (N_BINS,) or counts.sum() <= 0:
        raise ShapeError(f"counts must be ({N_BINS},) with a positive sum, got {counts.shape}")
    eff = smooth_counts(counts, lds_kernel() if kernel is None else kernel) if lds else counts
    pos = eff[eff > 0]
    eff = np.where(eff > 0, eff, pos.min())
    w = eff ** (-1.0 if mode == "inverse" else -0.5)
    return w / ((w * counts).sum() / counts.sum())


def depth_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    kind: str,
    *,
    noise_var: Any = 1.0,
    bin_centers: torch.Tensor | None = None,
    bin_weights: torch.Tensor | None = None,
    gmm: Any = None,
    pixel_weights: torch.Tensor | None = None,
    min_depth: float = MIN_DEPTH,
    chunk: int = DEFAULT_CHUNK,
) -> torch.Tensor:
    """Per-pixel loss averaged over the valid pixels (see the module docstring).

    Args:
        pred, target: (B, 1, H, W) metres.
        kind: one of ``KINDS``.
        noise_var: v = sigma^2 (number or 0-d tensor; learnable if it requires grad).
        bin_centers, bin_weights: (N_BINS,) BNI prior (centres in metres, probabilities).
        gmm: a :class:`ihmr.losses.gai.PreparedGMM` (1-D) for GAI.
        pixel_weights: (N_BINS,) per-bin weights for ``inverse`` / ``sqrt_inv``.
        chunk: pixels per chunk of the balancing term.
    Returns: 0-d tensor; 0 (attached to the graph) when no pixel is valid.
    """
    check_choice(kind, KINDS, "loss kind")
    if chunk < 1:
        raise ConfigError(f"chunk must be >= 1 pixel, got {chunk}")
    p, y = valid_pixels(pred, target, min_depth)
    n = p.numel()
    if n == 0:
        return pred.sum() * 0.0
    if kind == "mse":
        return (p - y).pow(2).mean()
    if kind in REWEIGHTED:
        if pixel_weights is None:
            raise ValueError(f"kind={kind!r} needs pixel_weights (see reweight_table)")
        bins = torch.clamp((y / BIN_WIDTH).long(), max=N_BINS - 1)
        return (pixel_weights.to(p.dtype)[bins] * (p - y).pow(2)).mean()
    if kind == "bni":
        if bin_centers is None or bin_weights is None:
            raise ValueError("kind='bni' needs bin_centers and bin_weights (the depth histogram)")

        def fn(a, b, v):
            return bni_loss(a, b, bin_centers, bin_weights, v, reduction="sum")
    elif kind == "gai":
        if gmm is None:
            raise ValueError("kind='gai' needs a prepared 1-D GMM prior")

        def fn(a, b, v):
            return gai_loss(a, b, gmm, v, reduction="sum")
    else:
        perm = torch.randperm(n, device=p.device)  # random pixel groups: no spatial clusters
        p, y = p[perm], y[perm]

        def fn(a, b, v):
            return bmc_loss(a, b, v, reduction="sum")

    v = torch.as_tensor(noise_var, dtype=p.dtype, device=p.device)
    return _chunked_sum(fn, p, y, v, chunk) / n


class DepthLoss(nn.Module):
    """The per-pixel loss as a module: owns sigma (parameter or buffer) and the priors (buffers).

    Args:
        kind: one of ``KINDS``.
        bin_counts: (N_BINS,) training pixel counts per 0.1 m bin (BNI prior, reweighting).
        gmm: a fitted 1-D :class:`ihmr.priors.GMMPrior` (GAI).
        init_noise_sigma: noise sigma in metres (1.0 for NYUD2-DIR); ``learn_noise`` makes it a
            parameter (the names of :class:`ihmr.losses.BMCLoss`).
        lds: LDS-smooth the bin counts of ``inverse`` / ``sqrt_inv`` and the BNI histogram, with
            the kernel ``lds_kernel`` of ``lds_ks`` bins and width ``lds_sigma`` bins
            (:func:`ihmr.priors.lds_kernel`; DIR: gaussian, 5, 2).
    """

    def __init__(
        self,
        kind: str = "mse",
        bin_counts=None,
        gmm: Any = None,
        init_noise_sigma: float = 1.0,
        learn_noise: bool = False,
        lds: bool = False,
        min_depth: float = MIN_DEPTH,
        chunk: int = DEFAULT_CHUNK,
        *,
        lds_kernel: str = "gaussian",
        lds_ks: int = 5,
        lds_sigma: float = 2.0,
    ) -> None:
        super().__init__()
        check_choice(kind, KINDS, "loss kind")
        check_positive(init_noise_sigma, "init_noise_sigma")
        self.kind, self.min_depth, self.chunk = kind, float(min_depth), int(chunk)
        log_sigma = torch.tensor(math.log(init_noise_sigma), dtype=torch.float64)
        if learn_noise:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        if kind in ("bni", *REWEIGHTED) and bin_counts is None:
            raise ValueError(f"kind={kind!r} needs bin_counts (training pixel counts per bin)")
        if kind == "gai" and gmm is None:
            raise ValueError("kind='gai' needs a fitted GMM prior of the training pixel depths")
        if bin_counts is not None:
            counts = np.asarray(bin_counts, dtype=np.float64)
            window = make_kernel(lds_kernel, lds_ks, lds_sigma) if lds else None
            prob = smooth_counts(counts, window) if lds else counts
            # Priors are kept in float64 (a float() / half() of the module leaves them alone:
            # buffers are cast) and follow the prediction's dtype at each call.
            self.register_buffer(
                "bin_centers", (torch.arange(N_BINS, dtype=torch.float64) + 0.5) * BIN_WIDTH
            )
            self.register_buffer("bin_weights", torch.from_numpy(prob / prob.sum()))
            if kind in REWEIGHTED:
                self.register_buffer(
                    "pixel_weights", torch.from_numpy(reweight_table(counts, kind, lds, window))
                )
        if gmm is not None:
            g = prepare_gmm(gmm, dtype=torch.float64)
            for name, t in g._asdict().items():
                self.register_buffer(f"gmm_{name}", t)

    @classmethod
    def from_config(cls, lc: Any, bin_counts, gmm: Any = None) -> "DepthLoss":
        """The loss of a config's ``loss`` section (``kind``, ``init_noise_sigma``,
        ``learn_noise``, ``lds*``, ``min_depth``, ``chunk_pixels``); ``gmm`` is used by GAI only."""
        return cls(
            lc.kind,
            bin_counts,
            gmm if lc.kind == "gai" else None,
            lc.init_noise_sigma,
            lc.learn_noise,
            lc.lds,
            lc.min_depth,
            lc.chunk_pixels,
            lds_kernel=lc.lds_kernel,
            lds_ks=lc.lds_ks,
            lds_sigma=lc.lds_sigma,
        )

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        gmm = None
        if self.kind == "gai":
            gmm = PreparedGMM(
                *(getattr(self, f"gmm_{f}").to(pred.dtype) for f in PreparedGMM._fields)
            )

        def cast(name):
            value = getattr(self, name, None)
            return None if value is None else value.to(pred.dtype)

        return depth_loss(
            pred,
            target,
            self.kind,
            noise_var=self.sigma.to(pred.dtype) ** 2,
            bin_centers=cast("bin_centers"),
            bin_weights=cast("bin_weights"),
            gmm=gmm,
            pixel_weights=cast("pixel_weights"),
            min_depth=self.min_depth,
            chunk=self.chunk,
        )
