"""The batched trainer equals plain single-model torch loops (nn.Module, ihmr.losses,
torch.optim, CosineAnnealingLR), model by model."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ihmr.synthetic import spec as S
from ihmr.synthetic.batched import TrainSet, cosine_lrs, train_batched
from ihmr.synthetic.data import fit_true_prior, make_dataset
from ihmr.synthetic.models import ModelSpec, init_params, to_torch_module

losses = pytest.importorskip("ihmr.losses")
F64 = torch.float64


def _trainset(dist, skew, seeds, protocol, spec, function="linear", with_prior=True):
    ds = [make_dataset(dist, skew, s, protocol, function) for s in seeds]
    prior = fit_true_prior(dist, skew, S.GAI_COMPONENTS[dist]) if with_prior else None
    return TrainSet(
        x_train=np.stack([d.x_train for d in ds]),
        y_train=np.stack([d.y_train for d in ds]),
        inv_density=np.stack([1 / d.density_train for d in ds]),
        x_val=np.stack([d.x_val for d in ds]),
        y_val=np.stack([d.y_val for d in ds]),
        x_test=np.stack([d.x_test for d in ds]),
        y_test=np.stack([d.y_test for d in ds]),
        init=np.stack([init_params(spec, np.random.default_rng([s, 99])) for s in seeds]),
        shuffle_keys=[[s, 5] for s in seeds],
        priors=[prior] * len(seeds) if prior else None,
    )


def _reference(spec, protocol, method, data: TrainSet, g, epochs, sigma_true, sigma_init, prior):
    """One model trained the straightforward way; returns (val MSE per epoch, params per
    epoch, final sigma)."""
    model = to_torch_module(spec, data.init[g]).double()
    learn = method in ("gai", "bmc")
    sigma = torch.tensor(sigma_init if learn else sigma_true, dtype=F64, requires_grad=learn)
    if protocol.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum)
        opt_s = torch.optim.SGD([sigma], lr=protocol.sigma_lr, momentum=protocol.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=protocol.lr)
        opt_s = torch.optim.Adam([sigma], lr=protocol.sigma_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    x = torch.as_tensor(data.x_train[g])
    y = torch.as_tensor(data.y_train[g])
    inv = torch.as_tensor(data.inv_density[g])
    n = len(x)
    # the trainer's seeded shuffle stream: one permutation per epoch, drawn per chunk
    perms = np.random.default_rng(data.shuffle_keys[g]).permuted(
        np.tile(np.arange(n), (epochs, 1)), axis=1
    )
    vals, params = [], []
    if prior is not None:
        prior = losses.prepare_gmm(prior, dtype=F64)
    for e in range(epochs):
        for s in range(0, n, protocol.batch_size):
            idx = torch.as_tensor(perms[e, s : s + protocol.batch_size])
            p, t = model(x[idx]), y[idx]
            if method == "vanilla":
                loss = losses.weighted_mse_loss(p, t)
            elif method == "reweight":
                w = inv[idx] / inv[idx].sum()
                loss = losses.weighted_mse_loss(p, t, w, reduction="sum")
            elif method.startswith("gai"):
                loss = losses.gai_loss(p, t, prior, sigma**2)
            else:
                loss = losses.bmc_loss(p, t, sigma**2)
            opt.zero_grad()
            opt_s.zero_grad()
            loss.backward()
            opt.step()
            if learn:
                opt_s.step()
        sched.step()
        with torch.no_grad():
            pv = model(torch.as_tensor(data.x_val[g]))
            vals.append(float(((pv - torch.as_tensor(data.y_val[g])) ** 2).mean()))
            params.append(torch.cat([q.detach().reshape(-1) for q in model.parameters()]))
    return np.array(vals), params, float(sigma.detach())


def _flat(spec, theta):
    """The trainer's parameter layout as nn.Module.parameters() order (weight, bias, ...)."""
    m = to_torch_module(spec, theta)
    return torch.cat([q.detach().reshape(-1) for q in m.parameters()]).double()


# float64 through the torch functions: equal to rounding; float32 through the compiled kernels
# (numba): equal to float32 rounding over a few steps.
BACKENDS = {"torch": (F64, 1e-8, 1e-10), "compiled": (torch.float32, 2e-4, 2e-5)}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("family", ["1d-sgd", "2d-adam", "mlp-adam", "1d-partial-batch"])
def test_batched_equals_plain_loops(family, backend):
    if backend == "compiled":
        pytest.importorskip("numba")
    dtype, rtol, atol = BACKENDS[backend]
    if family == "1d-sgd":
        spec, protocol = ModelSpec("linear", 1, 1), S.PROTOCOL_1D
        data = _trainset("normal", "high", [0], protocol, spec)
        methods, epochs = S.METHODS, 2
    elif family == "2d-adam":
        spec, protocol = ModelSpec("linear", 2, 2), S.PROTOCOL_2D
        data = _trainset("mvn", "moderate", [2], protocol, spec)
        methods, epochs = S.METHODS, 2
    else:
        spec, protocol = ModelSpec("mlp", 1, 1, hidden=6), S.PROTOCOL_NONLINEAR
        data = _trainset("normal", "moderate", [3], protocol, spec, "wave", with_prior=False)
        methods, epochs = ("vanilla", "reweight", "bmc_true", "bmc"), 2
    if family == "1d-partial-batch":  # 300 samples in batches of 128: the last one has 44
        spec = ModelSpec("linear", 1, 1)
        protocol = dataclasses.replace(S.PROTOCOL_1D, n_train=300, batch_size=128)
        data = _trainset("exponential", "moderate", [1], protocol, spec)
        methods, epochs = S.METHODS, 3
    res = train_batched(
        spec,
        protocol,
        methods,
        data,
        sigma_true=1.0,
        sigma_init=1.5,
        epochs=epochs,
        dtype=dtype,
        chunk_epochs=2,
        keep_history=True,
        backend=backend,
    )
    for g in range(len(data.init)):
        for r, method in enumerate(methods):
            prior = data.priors[g] if data.priors else None
            vals, params, sigma = _reference(
                spec, protocol, method, data, g, epochs, 1.0, 1.5, prior
            )
            np.testing.assert_allclose(
                res.val_history[:, g, r], vals, rtol=rtol, atol=atol, err_msg=f"{family} {method}"
            )
            best = int(np.argmin(vals))
            if backend == "torch" or np.sort(vals)[1] - vals[best] > 1e-3 * vals[best]:
                assert res.best_epoch[g, r] == best + 1
            best = res.best_epoch[g, r] - 1
            torch.testing.assert_close(
                _flat(spec, res.params[g, r]), params[best], rtol=rtol, atol=atol
            )
            assert abs(res.last_sigma[g, r] - sigma) < atol
            if method in ("gai", "bmc"):
                assert sigma != 1.5  # the learnable sigma moved


def test_selection_window_and_test_mse():
    spec, protocol = ModelSpec("linear", 1, 1), S.PROTOCOL_1D
    data = _trainset("normal", "low", [0], protocol, spec, with_prior=False)
    res = train_batched(
        spec, protocol, ("vanilla",), data, epochs=6, select_from=4, dtype=F64, keep_history=True
    )
    hist = res.val_history[:, 0, 0]
    assert 4 <= res.best_epoch[0, 0] <= 6
    assert res.best_epoch[0, 0] == 4 + int(np.argmin(hist[3:]))
    # test MSE of the selected linear model, computed by hand
    a = res.params[0, 0]
    pred = a[0] * data.x_test[0, :, 0] + a[1]
    assert abs(res.test_mse[0, 0] - np.mean((pred - data.y_test[0, :, 0]) ** 2)) < 1e-12


def test_cosine_schedule_matches_torch():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=17)
    ref = []
    for _ in range(17):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(cosine_lrs(0.2, 17), ref, rtol=1e-12, atol=1e-15)
    assert math.isclose(cosine_lrs(1.0, 4)[0], 1.0)
