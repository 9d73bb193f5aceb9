"""The compiled loss gradients equal the torch references of ihmr.synthetic.losses (which the
loss tests check against autograd), in float64, for every method, label dimension 1 and 2,
one or several prior components, and predictions far from every label."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("numba")
from ihmr.synthetic import kernels as K  # noqa: E402
from ihmr.synthetic import losses as L  # noqa: E402
from ihmr.synthetic.spec import METHODS  # noqa: E402


@pytest.mark.parametrize("x", [np.linspace(-125.0, 0.0, 200_001, dtype=np.float32)])
def test_exp2_matches_numpy(x):
    from numba import njit

    @njit
    def run(a):
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = K._exp2_nonpos(a[i])
        return out

    got = run(x).astype(np.float64)
    ref = np.exp2(x.astype(np.float64))
    assert np.max(np.abs(got / ref - 1.0)) < 3e-7
    tiny = run(np.array([-200.0, -1e30], np.float32))
    assert np.all(tiny >= 0) and np.all(tiny < 1e-37)


class _Gmm:
    def __init__(self, weights, means, covariances):
        self.weights, self.means, self.covariances = weights, means, covariances


def _priors(rng, G, d, ks):
    out = []
    for k in ks:
        w = rng.uniform(0.2, 1.0, k)
        a = rng.normal(size=(k, d, d)) * 0.5
        cov = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(d)
        out.append(_Gmm(w / w.sum(), rng.normal(2.0, 2.0, (k, d)), cov))
    return out


@pytest.mark.parametrize(
    "d,ks,offset",
    [
        (1, [1, 1, 1], 0.0),
        (1, [7, 3, 7], 0.0),
        (2, [1, 1, 1], 0.0),
        (2, [4, 2, 4], 0.0),
        (1, [3, 3, 3], 40.0),
        (2, [1, 2, 1], 40.0),
    ],
)
def test_loss_grads_match_torch(d, ks, offset):
    rng = np.random.default_rng([d, len(ks), int(offset)])
    G, B = len(ks), 96
    R = len(METHODS)
    priors = _priors(rng, G, d, ks)
    pt = L.prior_tensors(priors, max(ks), torch.float64)
    Y = rng.normal(2.0, 2.0, (G, B, d)).astype(np.float32)
    P = (Y[:, None] + rng.normal(0.0, 1.5, (G, R, B, d)) + offset).astype(np.float32)
    inv = rng.uniform(0.1, 5.0, (G, B)).astype(np.float32)
    W = inv / inv.sum(1, keepdims=True)
    v = rng.uniform(0.3, 2.5, (G, R)).astype(np.float32)
    codes = np.array([K.METHOD_CODES[m] for m in METHODS])
    gP = np.empty_like(P)
    gv = np.empty((G, R))
    K.loss_grads(
        P,
        np.ascontiguousarray(Y.transpose(0, 2, 1)),
        W,
        v,
        codes,
        np.array(ks, np.int64),
        *(pt[k].numpy() for k in ("log_weights", "means", "eigvals", "eigvecs")),
        gP,
        gv,
    )

    Pd, Yd, vd = (torch.tensor(a, dtype=torch.float64) for a in (P, Y, v))
    for r, method in enumerate(METHODS):
        if method == "vanilla":
            ref, ref_v = L.mse_grad(Pd[:, r], Yd), torch.zeros(G)
        elif method == "reweight":
            ref, ref_v = (
                L.mse_grad(Pd[:, r], Yd, torch.tensor(W, dtype=torch.float64)),
                torch.zeros(G),
            )
        elif method.startswith("gai"):
            tables = L.gai_tables(
                pt["log_weights"], pt["means"], pt["eigvals"], pt["eigvecs"], vd[:, r]
            )
            ref, ref_v = L.gai_grads(Pd[:, r], Yd, vd[:, r], *tables)
        else:
            ref, ref_v = L.bmc_grads(Pd[:, r], Yd, vd[:, r])
        scale = ref.abs().max().item()
        np.testing.assert_allclose(gP[:, r], ref.numpy(), rtol=0, atol=2e-6 * scale, err_msg=method)
        np.testing.assert_allclose(
            gv[:, r],
            ref_v.numpy(),
            rtol=2e-5,
            atol=2e-5 * (ref_v.abs().max().item() + 1e-30),
            err_msg=method,
        )
    assert np.all(np.isfinite(gP)) and np.all(np.isfinite(gv))
