"""Whole training chunks of the tiny regressors, compiled (numba): the fast path of the trainer.

:func:`train_chunk` runs a number of epochs of every model of a ``(G, R)`` grid (linear, or the
one-hidden-layer ReLU MLP of :mod:`.models`): batches drawn through the given permutations, the
forward pass, the loss gradients of :mod:`.kernels`, the backward pass, the optimiser step (SGD
with momentum or Adam, torch semantics, as :func:`.batched._optimizer_step`), then the
validation MSE (closed form for linear models) and the model selection of
:func:`.batched.train_batched`. Models run in parallel, each from the first to the last epoch of
the chunk without waiting for the others, so no per-step Python or thread synchronisation
remains. The result equals the torch path's up to float32 rounding (tested against plain
``torch.optim`` loops); the torch path remains the reference and serves other dtypes and label
dimensions.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numba
import numpy as np
from numba import njit, prange

from .kernels import _JIT, _LOG2E, _bmc_model, _gai_model, _gai_tables

OPTIMIZER_CODES = {"sgd": 0, "adam": 1}

# The kernel's arguments, grouped (numba passes named tuples of arrays and scalars as they are).
#: every model's state, updated in place (see :func:`train_chunk` for shapes)
Models = namedtuple("Models", "theta state1 state2 best_theta best_val best_epoch history")
#: the training data of every group and the chunk's sample orders and learning rates
Batches = namedtuple("Batches", "u_train y_train inv_density perm lrs")
#: the GAI prior of every group: components, log weights, means, covariance eigen-decomposition
Prior = namedtuple("Prior", "n_comp log_w means eigvals eigvecs")
#: validation data: moments (linear models) or samples (MLPs); the unused pair is a dummy
Validation = namedtuple("Validation", "suu syu syy u_val y_val")
#: per-method loss codes and learnable sigma, where the chunk starts, optimiser and model
Settings = namedtuple(
    "Settings",
    "codes learnable first_epoch first_step select_from optimizer "
    "momentum sigma_lr batch_size hidden",
)


def train_chunk(
    theta,
    state1,
    state2,
    best_theta,
    best_val,
    best_epoch,
    history,
    u_train,
    y_train,
    inv_density,
    perm,
    lrs,
    first_epoch: int,
    first_step: int,
    codes,
    learnable,
    n_comp,
    prior,
    validation,
    select_from: int,
    optimizer: str,
    momentum: float,
    sigma_lr: float,
    batch_size: int,
    hidden: int = 0,
) -> None:
    """Train every model for ``len(lrs)`` epochs, updating the arrays in place.

    Args:
        theta, state1, state2, best_theta: (G, R, n + 1) float32 parameters in the layout of
            :mod:`.models` then sigma; optimiser moments; best parameters so far.
        best_val (G, R) float64, best_epoch (G, R) int64: model selection state.
        history: (epochs, G, R) float64 validation MSE per epoch of this chunk, or (0, G, R).
        u_train: (G, N, q) float32 inputs with a trailing 1; y_train: (G, N, d) float32;
            inv_density: (G, N) float32 ``1 / p_train(y)``.
        perm: (epochs, G, N) int64 sample order of every epoch; lrs: (epochs,) regressor lr.
        first_epoch, first_step: epochs and steps done before this chunk.
        codes: (R,) loss codes (:data:`.kernels.METHOD_CODES`); learnable: (R,) bool.
        n_comp, prior: GAI prior per group as for :func:`.kernels.loss_grads`.
        validation: linear models: ``(suu (G, q, q), syu (G, d, q), syy (G,))`` float64 moments
            of ``u = [x, 1]`` and ``y`` (closed-form MSE); MLPs: ``(u_val (G, M, q), y_val (G,
            M, d))`` float32.
        select_from: first epoch (1-based) model selection may pick.
        hidden: 0 for linear models, else the hidden width of the one-hidden-layer ReLU MLP.
    """
    if hidden:
        u_val, y_val = validation
        suu = np.zeros((1, 1, 1))
        syu = np.zeros((1, 1, 1))
        syy = np.zeros(1)
    else:
        suu, syu, syy = validation
        u_val = np.zeros((1, 1, 1), np.float32)
        y_val = np.zeros((1, 1, 1), np.float32)
    models = Models(theta, state1, state2, best_theta, best_val, best_epoch, history)
    batches = Batches(u_train, y_train, inv_density, perm, np.asarray(lrs, np.float64))
    settings = Settings(
        codes,
        learnable,
        int(first_epoch),
        int(first_step),
        int(select_from),
        OPTIMIZER_CODES[optimizer],
        float(momentum),
        float(sigma_lr),
        int(batch_size),
        int(hidden),
    )
    previous = numba.set_parallel_chunksize(1)  # models differ in cost: hand them out singly
    try:
        _train(
            models,
            batches,
            Prior(n_comp, *prior),
            Validation(suu, syu, syy, u_val, y_val),
            settings,
        )
    finally:
        numba.set_parallel_chunksize(previous)


@njit(inline="always", **_JIT)
def _forward(th, ut, pt, hid, B, hidden):
    """Predictions pt (d, B) of the inputs ut (q, B); MLPs keep their activations in hid."""
    q = ut.shape[0]
    d = pt.shape[0]
    if hidden == 0:  # p = A u, A (d, q) row-major
        for k in range(d):
            for i in range(B):
                pt[k, i] = th[k * q + q - 1]  # the bias multiplies the constant 1
            for c in range(q - 1):
                a = th[k * q + c]
                for i in range(B):
                    pt[k, i] += a * ut[c, i]
        return
    n1 = hidden * q  # A1 (hidden, q) then W2 (d, hidden) then b2 (d,)
    for j in range(hidden):
        for i in range(B):
            hid[j, i] = th[j * q + q - 1]
        for c in range(q - 1):
            a = th[j * q + c]
            for i in range(B):
                hid[j, i] += a * ut[c, i]
        for i in range(B):
            hid[j, i] = max(hid[j, i], np.float32(0.0))
    for k in range(d):
        for i in range(B):
            pt[k, i] = th[n1 + d * hidden + k]
        for j in range(hidden):
            w = th[n1 + k * hidden + j]
            for i in range(B):
                pt[k, i] += w * hid[j, i]


@njit(inline="always", **_JIT)
def _backward(th, ut, gp, hid, gh, grad, B, hidden):
    """Write dL/dtheta (without sigma) into grad given gp = dL/dp (d, B)."""
    q = ut.shape[0]
    d = gp.shape[0]
    if hidden == 0:  # dL/dA = sum_i gp_i u_i^T
        for k in range(d):
            for c in range(q):
                acc = np.float32(0.0)
                for i in range(B):
                    acc += gp[k, i] * ut[c, i]
                grad[k * q + c] = acc
        return
    n1 = hidden * q
    for k in range(d):
        acc = np.float32(0.0)
        for i in range(B):
            acc += gp[k, i]
        grad[n1 + d * hidden + k] = acc
        for j in range(hidden):
            acc = np.float32(0.0)
            for i in range(B):
                acc += gp[k, i] * hid[j, i]
            grad[n1 + k * hidden + j] = acc
    for j in range(hidden):  # back through W2 and the ReLU (derivative 0 at 0, as torch)
        for i in range(B):
            gh[j, i] = np.float32(0.0)
        for k in range(d):
            w = th[n1 + k * hidden + j]
            for i in range(B):
                gh[j, i] += w * gp[k, i]
        for i in range(B):
            if hid[j, i] <= np.float32(0.0):
                gh[j, i] = np.float32(0.0)
        for c in range(q):
            acc = np.float32(0.0)
            for i in range(B):
                acc += gh[j, i] * ut[c, i]
            grad[j * q + c] = acc


@njit(parallel=True, **_JIT)
def _train(models, batches, prior, validation, settings):
    """Every model of the (G, R) grid through the chunk's epochs, one model per parallel job."""
    # unpacked before the parallel loop: numba's parallel loops drop writes made through a named
    # tuple's field (``t.b[j] = x``), and the plain names give the same machine code as before
    # the grouping (results bit-identical to the flat 32-argument kernel, checked)
    theta, state1, state2, best_theta, best_val, best_epoch, history = models
    u_train, y_train, inv_density, perm, lrs = batches
    n_comp, log_w, means, eigvals, eigvecs = prior
    suu, syu, syy, u_val, y_val = validation
    (
        codes,
        learnable,
        first_epoch,
        first_step,
        select_from,
        optimizer,
        momentum,
        sigma_lr,
        batch_size,
        hidden,
    ) = settings
    G, R, n1 = theta.shape
    N, q = u_train.shape[1], u_train.shape[2]
    d = y_train.shape[2]
    n_epochs = lrs.shape[0]
    keep_history = history.shape[0] > 0
    n_val = u_val.shape[1]
    vb = max(1, min(n_val, 256)) if hidden else 1  # validation block of the MLPs
    for job in prange(G * R):
        g = job // R
        r = job - g * R
        code = codes[r]
        th = theta[g, r]
        m1 = state1[g, r]
        m2 = state2[g, r]
        grad = np.zeros(n1, np.float32)
        ut = np.empty((q, batch_size), np.float32)  # sample-last layouts: unit-stride loops
        yt = np.empty((d, batch_size), np.float32)
        pt = np.empty((d, batch_size), np.float32)
        gp = np.empty((d, batch_size), np.float32)
        hid = np.empty((max(hidden, 1), max(batch_size, vb)), np.float32)
        gh = np.empty((max(hidden, 1), batch_size), np.float32)
        uv = np.empty((q, vb), np.float32)
        pv = np.empty((d, vb), np.float32)
        wb = np.empty(batch_size, np.float32)
        ysq = np.empty(batch_size, np.float32)
        K = n_comp[g]
        tab = np.empty((10, K), np.float32)
        buf = np.empty(max(batch_size, K), np.float32)
        step = first_step
        for e in range(n_epochs):
            for s in range(0, N, batch_size):
                B = min(batch_size, N - s)
                _gather(perm, u_train, y_train, inv_density, e, g, s, B, ut, yt, wb)
                _forward(th, ut, pt, hid, B, hidden)
                v = th[n1 - 1] * th[n1 - 1]
                gv = _loss_grad(
                    code,
                    log_w[g, :K],
                    means[g, :K],
                    eigvals[g, :K],
                    eigvecs[g, :K],
                    pt,
                    yt,
                    wb,
                    ysq,
                    v,
                    tab,
                    buf,
                    gp,
                    B,
                )
                _backward(th, ut, gp, hid, gh, grad, B, hidden)
                grad[n1 - 1] = np.float32(gv * 2.0 * th[n1 - 1]) if learnable[r] else 0.0
                step += 1
                _optimizer_step(th, grad, m1, m2, lrs[e], sigma_lr, step, optimizer, momentum)
            if hidden == 0:
                val = _linear_val_mse(th, suu[g], syu[g], syy[g], q, d)
            else:
                val = _mlp_val_mse(th, u_val[g], y_val[g], uv, pv, hid, vb, hidden)
            epoch = first_epoch + e + 1
            if keep_history:
                history[e, g, r] = val
            if epoch >= select_from and val < best_val[g, r]:
                best_val[g, r] = val
                best_epoch[g, r] = epoch
                best_theta[g, r, :] = th


@njit(inline="always", **_JIT)
def _gather(perm, u_train, y_train, inv_density, e, g, s, B, ut, yt, wb):
    """Batch ``s:s+B`` of epoch ``e`` of group ``g``: inputs ut (q, B), labels yt (d, B) and
    inverse densities wb (B,), in the epoch's sample order ``perm[e, g]``."""
    q = ut.shape[0]
    d = yt.shape[0]
    for i in range(B):
        idx = perm[e, g, s + i]
        for c in range(q):
            ut[c, i] = u_train[g, idx, c]
        for k in range(d):
            yt[k, i] = y_train[g, idx, k]
        wb[i] = inv_density[g, idx]


@njit(inline="always", **_JIT)
def _loss_grad(code, log_w, means, eigvals, eigvecs, pt, yt, wb, ysq, v, tab, buf, gp, B):
    """dL/dp of the batch into gp (d, B) for loss ``code`` (GAI: the group's prior ``log_w``,
    ``means``, ``eigvals``, ``eigvecs``); returns dL/dv (0 for the losses without sigma)."""
    d = pt.shape[0]
    gv = 0.0
    if code == 3:
        for j in range(B):
            ysq[j] = yt[0, j] * yt[0, j]
            if d == 2:
                ysq[j] += yt[1, j] * yt[1, j]
        gv = _bmc_model(pt, yt, ysq, np.float32(_LOG2E / (2.0 * v)), buf, gp, B) / v
    elif code == 2:
        _gai_tables(log_w, means, eigvals, eigvecs, float(v), tab)
        gv = _gai_model(pt, yt, v, tab, buf, gp, B)
    else:
        wsum = np.float32(0.0)
        for i in range(B):
            wsum += wb[i]
        for k in range(d):
            for i in range(B):
                scale = np.float32(2.0 / B) if code == 0 else np.float32(2.0) * wb[i] / wsum
                gp[k, i] = (pt[k, i] - yt[k, i]) * scale
    return gv


@njit(inline="always", **_JIT)
def _linear_val_mse(th, suu, syu, syy, q, d):
    """Validation MSE (mean over samples and dims of ||A u - y||^2) of a linear model, in
    closed form from the moments ``suu`` (q, q), ``syu`` (d, q), ``syy`` of u = [x, 1] and y."""
    val = syy
    for k in range(d):
        for c in range(q):
            a = float(th[k * q + c])
            val -= 2.0 * a * syu[k, c]
            for c2 in range(q):
                val += a * float(th[k * q + c2]) * suu[c, c2]
    return val / d


@njit(inline="always", **_JIT)
def _mlp_val_mse(th, u_val, y_val, uv, pv, hid, vb, hidden):
    """Validation MSE of an MLP on ``u_val`` (M, q), ``y_val`` (M, d), in blocks of ``vb``."""
    q = uv.shape[0]
    d = pv.shape[0]
    n_val = u_val.shape[0]
    val = 0.0
    for s in range(0, n_val, vb):
        B = min(vb, n_val - s)
        for i in range(B):
            for c in range(q):
                uv[c, i] = u_val[s + i, c]
        _forward(th, uv, pv, hid, B, hidden)
        for k in range(d):
            for i in range(B):
                err = float(pv[k, i] - y_val[s + i, k])
                val += err * err
    return val / (n_val * d)


@njit(inline="always", **_JIT)
def _optimizer_step(th, grad, m1, m2, lr, sigma_lr, step, optimizer, momentum):
    """SGD with momentum or Adam (torch semantics, float32), regressor lr ``lr`` and sigma lr
    ``sigma_lr`` for the last entry."""
    n1 = th.shape[0]
    if optimizer == 0:
        for c in range(n1):
            rate = np.float32(sigma_lr if c == n1 - 1 else lr)
            m1[c] = np.float32(momentum) * m1[c] + grad[c]
            th[c] -= rate * m1[c]
        return
    beta1, beta2, eps = np.float32(0.9), np.float32(0.999), np.float32(1e-8)
    bc1 = 1.0 - 0.9**step
    bc2_sqrt = math.sqrt(1.0 - 0.999**step)
    for c in range(n1):
        rate = sigma_lr if c == n1 - 1 else lr
        m1[c] += (grad[c] - m1[c]) * (np.float32(1.0) - beta1)
        m2[c] = beta2 * m2[c] + (np.float32(1.0) - beta2) * grad[c] * grad[c]
        denom = math.sqrt(m2[c]) / bc2_sqrt + eps
        th[c] -= np.float32(rate / bc1) * (m1[c] / np.float32(denom))
