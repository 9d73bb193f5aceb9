"""Compiled loss gradients of the synthetic benchmark's models (numba).

The per-model functions (:func:`_bmc_model`, :func:`_gai_model` with :func:`_gai_tables`)
return the gradient of one model's batch loss with respect to its predictions and to its noise
variance ``v = sigma^2``: exactly what :func:`ihmr.synthetic.losses.mse_grad`,
:func:`~ihmr.synthetic.losses.bmc_grads` and :func:`~ihmr.synthetic.losses.gai_grads` compute
(the derivations are in that module's docstring), fused into one pass per model, float32, labels
of dimension 1 or 2. :mod:`.compiled` calls them inside its training loop; :func:`loss_grads`
applies them to every model of a ``(G, R)`` grid for one batch (the tests' entry point, and one
for other batched trainers). The benchmark spends almost all of its time here: BMC alone needs
about 1.1e11 exponentials for Table 4.

Numerics. Softmax weights are ``2^(x - max)`` with the exponent computed by
:func:`_exp2_nonpos`: round to the nearest integer ``n``, a degree-6 polynomial for ``2^f`` on
``[-1/2, 1/2]`` (least squares in relative error on 400 Chebyshev nodes; 1.9e-9 in exact
arithmetic, about 1e-7 = 1.6 ulp in float32) and ``2^n`` written into the exponent bits. The
loops then vectorise (the libm ``exp`` does not). Row maxima of non-negative floats (BMC
squared distances) are integer maxima of their bit patterns, which also vectorise; general
floats (GAI log-densities) are mapped to order-preserving integers first.

The torch implementations in :mod:`ihmr.synthetic.losses` stay the reference: the tests compare
this module with them, and the trainer uses them where numba is unavailable.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

METHOD_CODES = {"vanilla": 0, "reweight": 1, "gai_true": 2, "gai": 2, "bmc_true": 3, "bmc": 3}
"""Loss of each method as the integer ``codes`` of :func:`loss_grads` expects."""

_JIT = dict(fastmath=True, error_model="numpy", cache=True)
_LOG2E = np.float32(1.4426950408889634)
_C0, _C1, _C2, _C3, _C4, _C5, _C6 = (
    np.float32(c)
    for c in (
        1.0000000005920209,
        0.6931472056005101,
        0.24022646608714127,
        0.05550328997516974,
        0.009618519534336466,
        0.0013399860363408223,
        0.00015337576838590306,
    )
)
_INT_MAX = np.int32(2147483647)


@intrinsic
def _bits_to_float(typingctx, x):
    """Reinterpret the low 32 bits of an integer as a float32."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        bits = builder.trunc(args[0], ir.IntType(32)) if x.bitwidth > 32 else args[0]
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(x), codegen


@intrinsic
def _float_to_bits(typingctx, x):
    """Reinterpret a float32 as an int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(x), codegen


@njit(inline="always", **_JIT)
def _exp2_nonpos(x):
    """``2^x`` for ``x <= 0`` in float32; below ``2^-125`` it returns about ``2^-125``, far
    under float32 resolution of the row sums it enters (which contain a 1)."""
    x = max(x, np.float32(-125.0))
    n = np.floor(x + np.float32(0.5))
    f = x - n
    p = _C6 * f + _C5
    p = p * f + _C4
    p = p * f + _C3
    p = p * f + _C2
    p = p * f + _C1
    p = p * f + _C0
    return p * _bits_to_float((np.int32(n) + np.int32(127)) << np.int32(23))


@njit(inline="always", **_JIT)
def _flip(b):
    """Flip the magnitude bits of negative int32 bit patterns: float32 bit patterns then order
    like the floats as signed integers. The map is its own inverse."""
    return b ^ ((b >> np.int32(31)) & np.int32(0x7FFFFFFF))


@njit(inline="always", **_JIT)
def _ordered(x):
    """An int32 that orders like the float32 ``x``."""
    return _flip(_float_to_bits(x))


@njit(**_JIT)
def _bmc_model(p, yt, ysq, scale, buf, gp, B):
    """BMC for one model on the first B samples: p (d, >=B) predictions, yt (d, >=B) targets,
    ysq (>=B,) = ||y_j||^2, scale = log2(e) / (2v), buf (>=B,) scratch. Writes dL/dp into
    gp (d, >=B); returns ``v * dL/dv`` (float64)."""
    d = p.shape[0]
    acc = 0.0
    for i in range(B):
        # logits -||p_i - y_j||^2 / (2v) shifted by their maximum: the nearest label
        least = _INT_MAX
        if d == 1:
            for j in range(B):
                a = p[0, i] - yt[0, j]
                buf[j] = a * a
                least = min(least, _float_to_bits(buf[j]))
        else:
            for j in range(B):
                a = p[0, i] - yt[0, j]
                b = p[1, i] - yt[1, j]
                buf[j] = a * a + b * b
                least = min(least, _float_to_bits(buf[j]))
        nearest = _bits_to_float(least)
        z = np.float32(0.0)
        m2 = np.float32(0.0)
        s0 = np.float32(0.0)
        s1 = np.float32(0.0)
        if d == 1:
            for j in range(B):
                e = _exp2_nonpos((nearest - buf[j]) * scale)
                z += e
                m2 += e * ysq[j]
                s0 += e * yt[0, j]
        else:
            for j in range(B):
                e = _exp2_nonpos((nearest - buf[j]) * scale)
                z += e
                m2 += e * ysq[j]
                s0 += e * yt[0, j]
                s1 += e * yt[1, j]
        # dL/dp_i = 2 (ybar_i - y_i) / B;
        # v dL/dv sums E_S||y||^2 - ||y_i||^2 - 2 p_i.(ybar_i - y_i)
        diff0 = s0 / z - yt[0, i]
        gp[0, i] = diff0 * np.float32(2.0 / B)
        dot = p[0, i] * diff0
        if d == 2:
            diff1 = s1 / z - yt[1, i]
            gp[1, i] = diff1 * np.float32(2.0 / B)
            dot += p[1, i] * diff1
        acc += m2 / z - ysq[i] - 2.0 * dot
    return acc / B


@njit(**_JIT)
def _gai_tables(log_w, means, eigvals, eigvecs, v, tab):
    """Per-component constants of GAI at variance v (float64 in, float32 out), one column per
    component (rows ``const, mu_0, mu_1, A_00, A_01, A_11, (A^2)_00, (A^2)_01, (A^2)_11, tr A``,
    so that the loops over components read contiguous memory) with
    ``A = (Sigma + vI)^-1`` from the eigendecomposition and ``const = log w - log det(2 pi (Sigma
    + vI)) / 2``. In 1-D only const, mu_0, A_00, (A^2)_00 and tr A are used."""
    K, d = means.shape
    for k in range(K):
        c = log_w[k]
        a00 = a01 = a11 = q00 = q01 = q11 = tr = 0.0
        for t in range(d):
            s = eigvals[k, t] + v
            c -= 0.5 * np.log(2.0 * np.pi * s)
            inv = 1.0 / s
            tr += inv
            u0 = eigvecs[k, 0, t]
            a00 += inv * u0 * u0
            q00 += inv * inv * u0 * u0
            if d == 2:
                u1 = eigvecs[k, 1, t]
                a01 += inv * u0 * u1
                a11 += inv * u1 * u1
                q01 += inv * inv * u0 * u1
                q11 += inv * inv * u1 * u1
        tab[0, k] = c
        tab[1, k] = means[k, 0]
        tab[2, k] = means[k, 1] if d == 2 else 0.0
        tab[3, k] = a00
        tab[4, k] = a01
        tab[5, k] = a11
        tab[6, k] = q00
        tab[7, k] = q01
        tab[8, k] = q11
        tab[9, k] = tr


@njit(**_JIT)
def _gai_model(p, yt, v, tab, buf, gp, B):
    """GAI for one model on the first B samples (shapes as :func:`_bmc_model`, buf (>=K,))
    with the tables of :func:`_gai_tables` (K columns). Writes dL/dp into gp; returns dL/dv
    (float64)."""
    d = p.shape[0]
    K = tab.shape[1]
    acc = 0.0
    for i in range(B):
        p0 = p[0, i]
        p1 = p[1, i] if d == 2 else np.float32(0.0)
        if K == 1:  # one component: responsibility 1 (tab rows 2, 4, 5, 7, 8 are 0 in 1-D)
            q0 = p0 - tab[1, 0]
            q1 = p1 - tab[2, 0]
            z = np.float32(1.0)
            g0 = tab[3, 0] * q0 + tab[4, 0] * q1
            g1 = tab[4, 0] * q0 + tab[5, 0] * q1
            h = (
                tab[6, 0] * q0 * q0
                + np.float32(2.0) * tab[7, 0] * q0 * q1
                + tab[8, 0] * q1 * q1
                - tab[9, 0]
            )
        else:
            # component log-densities log w_k + log N(p; mu_k, Sigma_k + vI), shifted by their max
            top = -_INT_MAX
            if d == 1:
                for k in range(K):
                    q = p0 - tab[1, k]
                    buf[k] = tab[0, k] - np.float32(0.5) * tab[3, k] * q * q
                    top = max(top, _ordered(buf[k]))
            else:
                for k in range(K):
                    q0 = p0 - tab[1, k]
                    q1 = p1 - tab[2, k]
                    buf[k] = tab[0, k] - np.float32(0.5) * (
                        tab[3, k] * q0 * q0
                        + np.float32(2.0) * tab[4, k] * q0 * q1
                        + tab[5, k] * q1 * q1
                    )
                    top = max(top, _ordered(buf[k]))
            peak = _bits_to_float(_flip(top))
            z = np.float32(0.0)
            g0 = np.float32(0.0)  # sum_k r_k (A_k q_k)
            g1 = np.float32(0.0)
            h = np.float32(0.0)  # sum_k r_k (q_k^T A_k^2 q_k - tr A_k)
            if d == 1:
                for k in range(K):
                    e = _exp2_nonpos((buf[k] - peak) * _LOG2E)
                    q = p0 - tab[1, k]
                    aq = tab[3, k] * q
                    z += e
                    g0 += e * aq
                    h += e * (tab[6, k] * q * q - tab[9, k])
            else:
                for k in range(K):
                    e = _exp2_nonpos((buf[k] - peak) * _LOG2E)
                    q0 = p0 - tab[1, k]
                    q1 = p1 - tab[2, k]
                    z += e
                    g0 += e * (tab[3, k] * q0 + tab[4, k] * q1)
                    g1 += e * (tab[4, k] * q0 + tab[5, k] * q1)
                    h += e * (
                        tab[6, k] * q0 * q0
                        + np.float32(2.0) * tab[7, k] * q0 * q1
                        + tab[8, k] * q1 * q1
                        - tab[9, k]
                    )
        # dT2/dp = -sum r A q,  dT2/dv = sum r (q^T A^2 q - tr A) / 2;  T1 = ||e||^2/(2v) + ...
        e0 = p0 - yt[0, i]
        gp[0, i] = (e0 - v * g0 / z) * np.float32(2.0 / B)
        esq = e0 * e0
        if d == 2:
            e1 = p1 - yt[1, i]
            gp[1, i] = (e1 - v * g1 / z) * np.float32(2.0 / B)
            esq += e1 * e1
        acc += -esq / (2.0 * v * v) + d / (2.0 * v) + 0.5 * h / z
    return acc * (2.0 * v / B)


def loss_grads(P, Yt, W, v, codes, n_comp, log_w, means, eigvals, eigvecs, gP, gv) -> None:
    """Gradients of every model's batch loss (numpy arrays; the outputs are written in place).

    Args:
        P: (G, R, B, d) float32 predictions, d in {1, 2}.
        Yt: (G, d, B) float32 targets, label dimension first.
        W: (G, B) float32 normalised inverse-density weights (rows sum to 1; for Reweight).
        v: (G, R) noise variances.
        codes: (R,) int64 loss per method (:data:`METHOD_CODES`).
        n_comp: (G,) int64 number of prior components of each group (<= K; the rest is padding).
        log_w, means, eigvals, eigvecs: (G, K), (G, K, d), (G, K, d), (G, K, d, d) float64
            GMM prior per group (GAI; any K >= 1 when no method is GAI).
        gP: (G, R, B, d) float32 output dL/dP; gv: (G, R) float64 output dL/dv (0 for MSE).
    """
    # BMC models cost B^2 and MSE ones B: hand the models to the threads one at a time.
    previous = numba.set_parallel_chunksize(1)
    try:
        gPt = np.empty(P.shape[:2] + P.shape[:1:-1], np.float32)  # (G, R, d, B)
        _loss_grads(
            np.ascontiguousarray(P.transpose(0, 1, 3, 2)),
            Yt,
            W,
            v,
            codes,
            n_comp,
            log_w,
            means,
            eigvals,
            eigvecs,
            gPt,
            gv,
        )
        gP[...] = gPt.transpose(0, 1, 3, 2)
    finally:
        numba.set_parallel_chunksize(previous)


@njit(parallel=True, **_JIT)
def _loss_grads(P, Yt, W, v, codes, n_comp, log_w, means, eigvals, eigvecs, gP, gv):
    G, R, d, B = P.shape
    for job in prange(G * R):
        g = job // R
        r = job - g * R
        code = codes[r]
        p = P[g, r]
        yt = Yt[g]
        gp = gP[g, r]
        vv = v[g, r]
        if code == 3:
            ysq = np.empty(B, np.float32)
            for j in range(B):
                ysq[j] = yt[0, j] * yt[0, j]
                if d == 2:
                    ysq[j] += yt[1, j] * yt[1, j]
            buf = np.empty(B, np.float32)
            gv[g, r] = _bmc_model(p, yt, ysq, np.float32(_LOG2E / (2.0 * vv)), buf, gp, B) / vv
        elif code == 2:
            K = n_comp[g]
            tab = np.empty((10, K), np.float32)
            _gai_tables(log_w[g, :K], means[g, :K], eigvals[g, :K], eigvecs[g, :K], float(vv), tab)
            buf = np.empty(K, np.float32)
            gv[g, r] = _gai_model(p, yt, np.float32(vv), tab, buf, gp, B)
        else:
            for t in range(d):
                for i in range(B):
                    scale = np.float32(2.0 / B) if code == 0 else np.float32(2.0) * W[g, i]
                    gp[t, i] = (p[t, i] - yt[t, i]) * scale
            gv[g, r] = 0.0
