"""BMC (Eq. 3.14): naive loop, reductions, gradcheck, properties, the mmhuman3d preset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ihmr.losses import BMCLoss, _common, bmc_loss
from ihmr.losses import bmc as bmc_module


def naive_bmc_nll(p: np.ndarray, y: np.ndarray, v: float) -> np.ndarray:
    """Eq. 3.14 per sample with explicit Gaussian densities, one sample at a time (float64)."""
    b, d = p.shape
    out = np.empty(b)
    for i in range(b):
        log_n = [
            -0.5 * np.sum((y[j] - p[i]) ** 2) / v - 0.5 * d * math.log(2 * math.pi * v)
            for j in range(b)
        ]
        m = max(log_n)
        out[i] = -log_n[i] + m + math.log(sum(math.exp(t - m) for t in log_n))
    return out


@pytest.mark.parametrize("d", [1, 3, 216])
def test_matches_naive_loop(rng, d):
    p, y = rng.normal(size=(7, d)), rng.normal(size=(7, d))
    v = 0.7 if d < 10 else 20.0
    want = 2 * v * naive_bmc_nll(p, y, v)
    got = bmc_loss(torch.tensor(p), torch.tensor(y), v, reduction="none")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    assert float(bmc_loss(torch.tensor(p), torch.tensor(y), v)) == pytest.approx(want.mean(), 1e-10)
    assert float(bmc_loss(torch.tensor(p), torch.tensor(y), v, reduction="sum")) == pytest.approx(
        want.sum(), 1e-10
    )


def test_one_dimensional_labels_equal_column_labels(rng):
    p, y = torch.tensor(rng.normal(size=9)), torch.tensor(rng.normal(size=9))
    a = bmc_loss(p, y, 0.3, reduction="none")
    b = bmc_loss(p[:, None], y[:, None], 0.3, reduction="none")
    assert a.shape == (9,)
    torch.testing.assert_close(a, b)


def test_large_batch_path_equals_exact_path(rng, monkeypatch):
    # Shifted far from 0 to exercise the centring of the |x|^2 + |y|^2 - 2xy expansion.
    p = torch.tensor(rng.normal(size=(40, 5)) + 1e3, dtype=torch.float32)
    y = p + torch.tensor(rng.normal(size=(40, 5)) * 0.3, dtype=torch.float32)
    exact = bmc_loss(p.double(), y.double(), 0.05, reduction="none")
    monkeypatch.setattr(_common, "DIRECT_LIMIT", 0)
    fast = bmc_loss(p, y, 0.05, reduction="none")
    torch.testing.assert_close(fast.double(), exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("d", [1, 3, 12])  # 12: the matmul path with the exact diagonal
def test_gradcheck_float64(gen, d):
    # Only pred and target: the (2v).detach() factor makes the v-gradient differ from the
    # derivative of the value on purpose (tested against the NLL's derivative below).
    p = torch.randn(6, d, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(6, d, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: bmc_loss(a, b, 0.8, balance_weight=0.7), (p, y))


def test_second_derivatives_float64(gen):
    # The analytic backward is itself differentiable (e.g. for gradient penalties).
    p = torch.randn(5, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(5, 2, dtype=torch.float64, generator=gen)
    assert torch.autograd.gradgradcheck(lambda a: bmc_loss(a, y, 0.7, reduction="none"), (p,))


def test_noise_var_gradient_is_2v_times_nll_gradient(rng):
    p, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    v0, h = 0.9, 1e-6
    fd = (naive_bmc_nll(p, y, v0 + h).mean() - naive_bmc_nll(p, y, v0 - h).mean()) / (2 * h)
    v = torch.tensor(v0, dtype=torch.float64, requires_grad=True)
    bmc_loss(torch.tensor(p), torch.tensor(y), v).backward()
    assert float(v.grad) == pytest.approx(2 * v0 * fd, rel=1e-6)


@pytest.mark.parametrize("d", [1, 12])
def test_row_blocks_match_naive_loop_and_gradcheck(rng, monkeypatch, d):
    monkeypatch.setattr(bmc_module, "BLOCK_ELEMENTS", {"cpu": 20})  # 2 rows per block with N = 9
    p, y = rng.normal(size=(9, d)), rng.normal(size=(9, d))
    got = bmc_loss(torch.tensor(p), torch.tensor(y), 0.9, reduction="none")
    np.testing.assert_allclose(got.numpy(), 2 * 0.9 * naive_bmc_nll(p, y, 0.9), rtol=1e-10)
    pt = torch.tensor(p, requires_grad=True)
    yt = torch.tensor(y, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: bmc_loss(a, b, 0.9, reduction="none"), (pt, yt))
    h = 1e-6
    fd = (naive_bmc_nll(p, y, 0.9 + h).mean() - naive_bmc_nll(p, y, 0.9 - h).mean()) / (2 * h)
    v = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    bmc_loss(torch.tensor(p), torch.tensor(y), v).backward()
    assert float(v.grad) == pytest.approx(2 * 0.9 * fd, rel=1e-6)


def test_prediction_gradient_is_mse_scale(rng):
    # Closed form: d value / d p_i = 2v/B * [(p_i - y_i)/v - sum_j softmax_ij (p_i - y_j)/v].
    p, y, v = rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), 0.5
    logits = -((p[:, None] - y[None]) ** 2).sum(-1) / (2 * v)
    soft = np.exp(logits - logits.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    want = 2 * v / 5 * ((p - y) / v - np.einsum("ij,ijd->id", soft, p[:, None] - y[None]) / v)
    pt = torch.tensor(p, requires_grad=True)
    bmc_loss(pt, torch.tensor(y), v).backward()
    np.testing.assert_allclose(pt.grad.numpy(), want, rtol=1e-10)


def test_gather_without_process_group_is_local(gen):
    p, y = torch.randn(5, 2, generator=gen), torch.randn(5, 2, generator=gen)
    torch.testing.assert_close(bmc_loss(p, y, 0.5, gather=True), bmc_loss(p, y, 0.5))


def test_batch_of_one_warns_and_is_exact():
    p, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    with pytest.warns(RuntimeWarning, match="at least 2 samples"):
        assert float(bmc_loss(p, y, 1.0)) == 0.0
    with pytest.warns(RuntimeWarning):
        # (mse_weight - balance_weight) * ||p - y||^2
        assert float(bmc_loss(p, y, 1.0, mse_weight=3.0)) == pytest.approx(2 * 5.0)


def test_mmhuman3d_preset_matches_transcription(rng):
    p = torch.tensor(rng.normal(size=(6, 216)), dtype=torch.float32)
    y = torch.tensor(rng.normal(size=(6, 216)), dtype=torch.float32)
    loss = BMCLoss.mmhuman3d(init_noise_sigma=3.0)
    v = 9.0
    # Released formula: [60 ||p-y||^2 / v + 5 logsumexp_j(-||p-y_j||^2 / (2v))] * v / L, batch mean.
    pd, yd = p.double(), y.double()
    mse = ((pd - yd) ** 2).sum(1) / v
    lse = torch.logsumexp(-0.5 * ((pd[:, None] - yd[None]) ** 2).sum(-1) / v, dim=1)
    want = ((60 * mse + 5 * lse) / 216 * v).mean()
    torch.testing.assert_close(loss(p, y).double(), want, rtol=1e-5, atol=0)


def test_known_value_of_released_unit_case():
    # mmhuman3d's BMCLossMD with its default weights (1, 1): ones vs zeros, labels (1, 6), v = 1:
    # (6 / 1 + 1 * (-3)) / 6 * 1 = 0.5. Its weights (a, b) are mse_weight = a, balance_weight = b/2.
    with pytest.warns(RuntimeWarning):
        value = bmc_loss(
            torch.ones(1, 6),
            torch.zeros(1, 6),
            1.0,
            mse_weight=1.0,
            balance_weight=0.5,
            normalize_by_dim=True,
        )
    assert float(value) == pytest.approx(0.5)


@pytest.mark.parametrize("d", [4, 216])
def test_tiny_sigma_and_huge_errors_are_finite(rng, d):
    p = torch.tensor(rng.normal(size=(64, d)), dtype=torch.float32, requires_grad=True)
    for v, shift in ((1e-8, 0.0), (1.0, 1e4), (1e-8, 1e4)):
        y = p.detach() + shift + torch.tensor(rng.normal(size=(64, d)), dtype=torch.float32)
        out = bmc_loss(p, y, torch.tensor(v), reduction="none")
        assert torch.isfinite(out).all()
        (g,) = torch.autograd.grad(out.sum(), p)
        assert torch.isfinite(g).all()


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(2, 12),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    shift=st.floats(-50, 50),
    log_v=st.floats(-3, 2),
)
def test_invariant_to_permutation_and_joint_shift(b, d, seed, shift, log_v):
    g = np.random.default_rng(seed)
    p, y = torch.tensor(g.normal(size=(b, d))), torch.tensor(g.normal(size=(b, d)))
    v = 10.0**log_v
    base = bmc_loss(p, y, v, reduction="none")
    perm = torch.tensor(g.permutation(b))
    torch.testing.assert_close(bmc_loss(p[perm], y[perm], v, reduction="none"), base[perm])
    moved = bmc_loss(p + shift, y + shift, v, reduction="none")
    torch.testing.assert_close(moved, base, rtol=1e-7, atol=1e-7 * (1 + abs(shift)) ** 2)


def test_float32_tolerance_against_float64(rng):
    p, y = rng.normal(size=(32, 8)), rng.normal(size=(32, 8))
    a = bmc_loss(torch.tensor(p, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), 0.5)
    b = bmc_loss(torch.tensor(p), torch.tensor(y), 0.5)
    assert a.dtype == torch.float32
    assert float(a) == pytest.approx(float(b), rel=1e-5, abs=1e-6)
