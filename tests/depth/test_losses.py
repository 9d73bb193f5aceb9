"""Per-pixel depth losses vs independent formulas; chunking is exact; invalid pixels ignored."""

import math

import numpy as np
import pytest
import torch

from ihmr.depth.losses import DepthLoss, depth_loss, reweight_table
from ihmr.priors import GMMPrior


@pytest.fixture
def maps(gen):
    y = torch.rand(2, 1, 9, 11, generator=gen, dtype=torch.float64) * 8 + 0.3  # some below 0.7
    p = y + 0.4 * torch.randn(y.shape, generator=gen, dtype=torch.float64)
    return p.requires_grad_(), y


def _counts(y):
    c = np.bincount(np.minimum((y[y >= 0.7] * 10).long().numpy(), 99), minlength=100)
    return c.astype(np.float64)


def test_mse_ignores_pixels_below_07m(maps):
    p, y = maps
    m = y >= 0.7
    assert (~m).any()
    ref = ((p.detach() - y)[m] ** 2).mean()
    assert float(depth_loss(p, y, "mse").detach()) == pytest.approx(float(ref), rel=1e-12)


def test_reweight_table_normalised_over_training_pixels():
    counts = np.zeros(100)
    counts[[10, 30]] = [100.0, 300.0]
    w = reweight_table(counts, "inverse")
    # w ~ 1/count with sum(counts * w) / sum(counts) = 1: w10 = 2, w30 = 2/3.
    assert w[10] == pytest.approx(2.0) and w[30] == pytest.approx(2.0 / 3.0)
    ws = reweight_table(counts, "sqrt_inv")
    assert ws[10] / ws[30] == pytest.approx(math.sqrt(3.0))


def test_bni_matches_numpy_formula_and_chunking_is_exact(maps):
    p, y = maps
    counts = _counts(y)
    loss = DepthLoss("bni", counts, init_noise_sigma=1.0)
    full = loss(p, y)
    (g_full,) = torch.autograd.grad(full, p)
    loss.chunk = 50  # 4 chunks
    chunked = loss(p, y)
    (g_chunk,) = torch.autograd.grad(chunked, p)
    assert float(chunked.detach()) == pytest.approx(float(full.detach()), rel=1e-12)
    torch.testing.assert_close(g_chunk, g_full, rtol=1e-12, atol=1e-14)
    # Independent: 2v * mean[(p-y)^2 / 2v + log sum_b w_b exp(-(p - c_b)^2 / 2v)], v = 1.
    m = (y >= 0.7).numpy()
    pp, yy = p.detach().numpy()[m], y.numpy()[m]
    c = (np.arange(100) + 0.5) * 0.1
    w = counts / counts.sum()
    ref = 0.0
    for a, b in zip(pp, yy, strict=True):
        s = sum(wb * math.exp(-((a - cb) ** 2) / 2) for wb, cb in zip(w, c, strict=True) if wb > 0)
        ref += 2 * ((a - b) ** 2 / 2 + math.log(s))
    assert float(full.detach()) == pytest.approx(ref / len(pp), rel=1e-10)


def test_gai_matches_closed_form(maps):
    scipy_stats = pytest.importorskip("scipy.stats")
    p, y = maps
    gmm = GMMPrior(
        weights=np.array([0.3, 0.7]),
        means=np.array([[2.0], [4.0]]),
        covariances=np.array([[[0.5]], [[1.5]]]),
    )
    v = 0.64
    loss = DepthLoss("gai", gmm=gmm, init_noise_sigma=0.8)
    got = float(loss(p, y).detach())
    m = (y >= 0.7).numpy()
    pp, yy = p.detach().numpy()[m], y.numpy()[m]
    nll = -scipy_stats.norm.logpdf(yy, pp, math.sqrt(v))
    integ = 0.3 * scipy_stats.norm.pdf(pp, 2.0, math.sqrt(0.5 + v)) + 0.7 * scipy_stats.norm.pdf(
        pp, 4.0, math.sqrt(1.5 + v)
    )
    ref = np.mean(2 * v * (nll + np.log(integ)))
    assert got == pytest.approx(ref, rel=1e-10)
    loss.chunk = 64
    assert float(loss(p, y).detach()) == pytest.approx(ref, rel=1e-10)


def test_balanced_losses_push_predictions_towards_rare_depths():
    # The balancing term pushes predictions *away from* the crowded prior mass (Eq. 3.16).
    counts = np.zeros(100)
    counts[25] = 1000.0  # all training pixels near 2.5 m
    counts[80] = 1.0
    p = torch.full((1, 1, 1, 1), 2.55, dtype=torch.float64, requires_grad=True)
    y = torch.full((1, 1, 1, 1), 2.55, dtype=torch.float64)
    (g,) = torch.autograd.grad(DepthLoss("bni", counts).double()(p, y), p)
    assert abs(float(g)) < 1e-3  # at the mode, the balancing gradient vanishes
    p2 = torch.full((1, 1, 1, 1), 3.0, dtype=torch.float64, requires_grad=True)
    (g2,) = torch.autograd.grad(DepthLoss("bni", counts).double()(p2, y), p2)
    (g_mse,) = torch.autograd.grad(depth_loss(p2, y, "mse"), p2)
    assert float(g2) < float(g_mse)  # the prior term pushes away from 2.55 m, weakening the pull


def test_learnable_sigma_gets_gradient_and_empty_is_zero(maps):
    p, y = maps
    loss = DepthLoss("bni", _counts(y), init_noise_sigma=1.0, learn_noise=True).double()
    loss(p, y).backward()
    assert loss.log_sigma.grad is not None and torch.isfinite(loss.log_sigma.grad)
    z = depth_loss(
        p,
        torch.zeros_like(y),
        "bni",
        bin_centers=torch.ones(3, dtype=torch.float64),
        bin_weights=torch.ones(3, dtype=torch.float64),
    )
    assert float(z.detach()) == 0.0


def test_missing_prior_is_a_clear_error():
    with pytest.raises(ValueError, match="bin_counts"):
        DepthLoss("bni")
    with pytest.raises(ValueError, match="GMM"):
        DepthLoss("gai")
    with pytest.raises(ValueError, match="loss kind"):
        DepthLoss("bnii")


def test_chunked_graph_saves_no_pixels_x_bins_tensor(maps):
    p, y = maps
    counts = _counts(y)
    n_valid = int((y >= 0.7).sum())
    biggest = []

    def pack(t):
        biggest.append(t.numel())
        return t

    for chunk, bound in ((10_000, None), (16, p.numel())):
        biggest.clear()
        module = DepthLoss("bni", counts, init_noise_sigma=1.3, learn_noise=True, chunk=chunk)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = module(p, y)
        grads = torch.autograd.grad(loss, [p, module.log_sigma])
        if bound is None:
            assert max(biggest) >= n_valid * 93  # unchunked: the (P, bins) logits are saved
            ref = grads
        else:
            assert max(biggest) <= bound  # chunked: only the (B, 1, H, W) / (P,) maps are kept
            torch.testing.assert_close(grads[0], ref[0], rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(grads[1], ref[1], rtol=1e-12, atol=1e-14)


def test_bmc_over_one_pixel_group_matches_the_formula(maps):
    p, y = maps
    v = 0.49
    got = float(depth_loss(p, y, "bmc", noise_var=v, chunk=10_000).detach())
    m = (y >= 0.7).numpy()
    pp, yy = p.detach().numpy()[m], y.numpy()[m]
    ref = 0.0
    for i in range(len(pp)):
        logits = -((pp[i] - yy) ** 2) / (2 * v)
        lse = logits.max() + math.log(np.exp(logits - logits.max()).sum())
        ref += 2 * v * ((pp[i] - yy[i]) ** 2 / (2 * v) + lse)
    assert got == pytest.approx(ref / len(pp), rel=1e-10)
