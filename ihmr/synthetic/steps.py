"""Loss gradients of one training step of the batched trainer, for all its models at once.

:class:`TorchStep` writes ``dL/dtheta`` (G, R, n_params + 1) for a batch with the torch
functions of :mod:`.losses` (any dtype and label dimension; the reference). The compiled path
(:mod:`.compiled`) trains whole chunks of epochs instead; :func:`use_compiled` decides which
applies and :func:`compiled_inputs` prepares the compiled path's method codes and priors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from . import losses as L
from .kernels import METHOD_CODES
from .models import backward, forward


def use_compiled(backend: str, dtype: torch.dtype, d: int) -> bool:
    """Whether :func:`.batched.train_batched` takes the compiled path (see its ``backend``)."""
    if backend not in ("auto", "compiled", "torch"):
        raise ConfigError(f"backend must be auto, compiled or torch, got {backend!r}")
    if backend == "torch":
        return False
    applies = dtype == torch.float32 and d in (1, 2)
    if backend == "compiled":
        if not applies:
            raise ConfigError(
                f"the compiled backend needs float32 and 1-D or 2-D labels, got "
                f"{dtype} and d = {d}; use backend='torch'"
            )
        return True
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return applies


def compiled_inputs(methods: Sequence[str], priors, n_groups: int, d: int):
    """``(codes, n_comp, prior)`` for :func:`.compiled.train_chunk`: the loss code of every
    method, and the GMM priors of the groups as padded float64 arrays (log weights, means,
    eigenvalues and eigenvectors of the covariances). Without priors (no GAI method) every
    group gets one unused standard-normal component."""
    codes = np.array([METHOD_CODES[m] for m in methods], dtype=np.int64)
    if priors is None:
        return (
            codes,
            np.ones(n_groups, np.int64),
            (
                np.zeros((n_groups, 1)),
                np.zeros((n_groups, 1, d)),
                np.ones((n_groups, 1, d)),
                np.tile(np.eye(d), (n_groups, 1, 1, 1)),
            ),
        )
    n_comp = np.array([np.asarray(p.weights).shape[0] for p in priors], np.int64)
    t = L.prior_tensors(priors, int(n_comp.max()), torch.float64)
    return (
        codes,
        n_comp,
        tuple(t[k].numpy() for k in ("log_weights", "means", "eigvals", "eigvecs")),
    )


class TorchStep:
    """Loss gradients of one batch from the torch functions of :mod:`.losses` (any dtype)."""

    def __init__(self, blocks, priors, dtype):
        self._blocks = blocks
        self._prior_t = None
        if blocks["gai"] is not None:
            self._prior_t = _prior_runs(priors, blocks["gai"][1] - blocks["gai"][0], dtype)

    def __call__(self, spec, theta, u, y, invd, learn_mask, grad) -> None:
        _step_grads(spec, theta, u, y, invd, self._blocks, self._prior_t, learn_mask, grad)


def _prior_runs(priors, reps: int, dtype) -> list:
    """Split the groups into runs of consecutive groups whose priors have the same number of
    components, so a Normal prior (K = 1) is not padded to an Exponential one (K = 64).
    Returns ``[(g0, g1, tensors)]`` with each tensor repeated ``reps`` times per group."""
    ks = [np.asarray(p.weights).shape[0] for p in priors]
    runs, g0 = [], 0
    for g in range(1, len(ks) + 1):
        if g == len(ks) or ks[g] != ks[g0]:
            t = L.prior_tensors(priors[g0:g], ks[g0], dtype)
            runs.append((g0, g, {k: x.repeat_interleave(reps, dim=0) for k, x in t.items()}))
            g0 = g
    return runs


def _step_grads(spec, theta, u, y, invd, blocks, prior_t, learn_mask, grad) -> None:
    """Gradients of every model's loss on one batch, written into ``grad`` (G, R, n_params+1)."""
    G, R = theta.shape[:2]
    n = u.shape[1]
    npar = spec.n_params
    P, cache = forward(spec, theta[..., :npar], u)  # (G, R, B, d)
    gP = (P - y.unsqueeze(1)).mul_(2.0 / n)
    gv = torch.zeros(G, R, dtype=theta.dtype)
    r = blocks["reweight"]
    if r is not None:
        w = L.reweight_weights(invd)  # (G, B)
        gP[:, r] = (P[:, r] - y) * (2.0 * w.unsqueeze(-1))
    sig = theta[..., npar]
    for name in ("gai", "bmc"):
        span = blocks[name]
        if span is None:
            continue
        a, b = span
        k = b - a
        Pb = P[:, a:b].reshape(G * k, n, -1)
        Yb = y.unsqueeze(1).expand(G, k, n, y.shape[-1]).reshape(G * k, n, -1)
        v = sig[:, a:b].reshape(-1) ** 2
        if name == "bmc":
            g, dv = L.bmc_grads(Pb, Yb, v)
            gP[:, a:b] = g.view(G, k, n, -1)
            gv[:, a:b] = dv.view(G, k)
            continue
        for g0, g1, pt in prior_t:  # runs of groups whose priors have the same K
            sl = slice(g0 * k, g1 * k)
            coef = L.gai_tables(pt["log_weights"], pt["means"], pt["eigvals"], pt["eigvecs"], v[sl])
            g, dv = L.gai_grads(Pb[sl], Yb[sl], v[sl], *coef)
            gP[g0:g1, a:b] = g.view(g1 - g0, k, n, -1)
            gv[g0:g1, a:b] = dv.view(g1 - g0, k)
    backward(spec, theta[..., :npar], u, cache, gP, grad)
    grad[..., npar] = gv * 2.0 * sig * learn_mask  # d/dsigma = 2 sigma d/dv; fixed sigma: 0
