"""nn.Module twins: equal to the functions, sigma handling, buffers, presets."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from ihmr.losses import (
    BMCLoss,
    BNILoss,
    GAILoss,
    bmc_loss,
    bni_loss,
    gai_loss,
    noise_parameters,
)

PRIOR = SimpleNamespace(
    weights=np.array([0.25, 0.75]),
    means=np.array([[0.0, 1.0], [2.0, -1.0]]),
    covariances=np.array([[[1.0, 0.3], [0.3, 0.5]], [[2.0, 0.0], [0.0, 0.1]]]),
)
CENTERS = torch.stack(
    torch.meshgrid(torch.linspace(-3, 3, 7), torch.linspace(-3, 3, 7), indexing="ij"), -1
).reshape(-1, 2)
WEIGHTS = torch.exp(-0.5 * (CENTERS**2).sum(1))


def modules():
    kw = dict(mse_weight=1.5, balance_weight=0.5, normalize_by_dim=True, reduction="none")
    return {
        "bmc": (BMCLoss(1.3, **kw), lambda p, y, v: bmc_loss(p, y, v, **kw)),
        "gai": (GAILoss(PRIOR, 1.3, **kw), lambda p, y, v: gai_loss(p, y, PRIOR, v, **kw)),
        "bni": (
            BNILoss(CENTERS, WEIGHTS, 1.3, **kw),
            lambda p, y, v: bni_loss(p, y, CENTERS, WEIGHTS, v, **kw),
        ),
    }


@pytest.mark.parametrize("name", ["bmc", "gai", "bni"])
def test_module_equals_function(gen, name):
    module, function = modules()[name]
    p, y = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    torch.testing.assert_close(module(p, y), function(p, y, 1.3**2))
    assert isinstance(module.noise_sigma, nn.Parameter)
    assert float(module.noise_var.detach()) == pytest.approx(1.69)


@pytest.mark.parametrize("name", ["bmc", "gai", "bni"])
def test_double_and_state_dict(gen, name):
    module, function = modules()[name]
    p, y = torch.randn(5, 2, generator=gen), torch.randn(5, 2, generator=gen)
    with torch.no_grad():
        module.noise_sigma.fill_(0.9)
    fresh = modules()[name][0]
    fresh.load_state_dict(module.state_dict())
    torch.testing.assert_close(fresh(p, y), module(p, y))
    module.double()
    out = module(p.double(), y.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, function(p.double(), y.double(), 0.81), rtol=1e-6, atol=1e-7)


def test_fixed_noise_is_a_buffer_and_noise_parameters():
    fixed = BMCLoss(2.0, learn_noise=False)
    assert "noise_sigma" in dict(fixed.named_buffers())
    assert list(fixed.parameters()) == []
    learnable = GAILoss(PRIOR, 0.5)
    holder = nn.ModuleDict({"a": fixed, "b": learnable, "head": nn.Linear(2, 2)})
    sigmas = noise_parameters(holder)
    assert len(sigmas) == 1 and sigmas[0] is learnable.noise_sigma
    assert {k for k, _ in learnable.named_buffers()} == {
        "gmm_log_weights",
        "gmm_means",
        "gmm_eigvals",
        "gmm_eigvecs",
    }


def test_sigma_gradient_through_module(gen):
    # d value / d sigma = 2v * d NLL / d v * 2 sigma, NLL = Eq. 3.14 written out directly.
    p, y = torch.randn(8, 2, generator=gen).double(), torch.randn(8, 2, generator=gen).double()

    def nll(s):
        v = s * s
        sq = ((p[:, None] - y[None]) ** 2).sum(-1)
        return (sq.diagonal() / (2 * v) + torch.logsumexp(-sq / (2 * v), 1)).mean()

    s0, h = 0.8, 1e-6
    fd = (float(nll(s0 + h)) - float(nll(s0 - h))) / (2 * h)
    loss = BMCLoss(s0).double()
    loss(p, y).backward()
    assert float(loss.noise_sigma.grad) == pytest.approx(2 * s0**2 * fd, rel=1e-6)


def test_mmhuman3d_preset_settings():
    m = BMCLoss.mmhuman3d()
    assert (m.mse_weight, m.balance_weight, m.normalize_by_dim, m.gather) == (60.0, 2.5, True, True)
    # balancing vs MSE term relative to the paper's 1:1 is 2.5/60 = 1/24
    assert m.balance_weight / m.mse_weight == pytest.approx(1 / 24)


def test_constructor_errors():
    with pytest.raises(ValueError, match="init_noise_sigma must be a finite number > 0"):
        BMCLoss(0.0)
    with pytest.raises(ValueError, match="did you mean 'mean'"):
        BMCLoss(reduction="meen")
    with pytest.raises(ValueError, match="at least one > 0"):
        BNILoss(CENTERS, torch.zeros(len(CENTERS)))


def test_one_training_step_moves_sigma_and_model(gen):
    # Smoke: an optimizer with sigma in its own group updates both.
    model = nn.Linear(3, 2)
    crit = BMCLoss(1.0)
    opt = torch.optim.SGD(
        [{"params": model.parameters(), "lr": 0.1}, {"params": noise_parameters(crit), "lr": 0.01}]
    )
    x, y = torch.randn(16, 3, generator=gen), torch.randn(16, 2, generator=gen)
    before = (model.weight.detach().clone(), float(crit.noise_sigma.detach()))
    loss = crit(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert not torch.equal(before[0], model.weight)
    assert float(crit.noise_sigma.detach()) != before[1]
    assert math.isfinite(float(loss.detach()))


def test_priors_from_ihmr_priors_plug_in(gen):
    priors = pytest.importorskip("ihmr.priors")
    gmm = priors.GMMPrior(PRIOR.weights, PRIOR.means, PRIOR.covariances)
    p, y = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    torch.testing.assert_close(GAILoss(gmm)(p, y), gai_loss(p, y, PRIOR, 1.0))
    labels = np.random.default_rng(0).exponential(size=500)
    hist = priors.histogram_prior(labels, np.linspace(0, labels.max() + 0.1, 33))
    bni = BNILoss(hist.centers, hist.density, 0.5)
    torch.testing.assert_close(
        bni(p[:, 0], y[:, 0]), bni_loss(p[:, 0], y[:, 0], hist.centers, hist.density, 0.25)
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["bmc", "gai", "bni"])
def test_cuda_matches_cpu(gen, name):
    module, _ = modules()[name]
    p, y = torch.randn(64, 2, generator=gen), torch.randn(64, 2, generator=gen)
    want = module(p, y)
    module.cuda()
    got = module(p.cuda(), y.cuda())
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-6)
