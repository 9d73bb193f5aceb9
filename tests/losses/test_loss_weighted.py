"""weighted_mse_loss: hand computation, plain MSE, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ihmr.errors import ShapeError
from ihmr.losses import weighted_mse_loss


def test_hand_computation():
    p = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]])
    y = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 0.0]])
    w = torch.tensor([0.5, 2.0, 1.0])
    # squared errors 5, 2, 1 -> weighted 2.5, 4, 1
    torch.testing.assert_close(weighted_mse_loss(p, y, w, "none"), torch.tensor([2.5, 4.0, 1.0]))
    assert float(weighted_mse_loss(p, y, w, "sum")) == pytest.approx(7.5)
    assert float(weighted_mse_loss(p, y, w)) == pytest.approx(2.5)
    assert float(weighted_mse_loss(p, y, w, normalize_by_dim=True)) == pytest.approx(1.25)


def test_no_weights_is_mse(gen):
    p, y = torch.randn(10, 3, generator=gen), torch.randn(10, 3, generator=gen)
    torch.testing.assert_close(weighted_mse_loss(p, y, normalize_by_dim=True), F.mse_loss(p, y))
    torch.testing.assert_close(weighted_mse_loss(p[:, 0], y[:, 0]), F.mse_loss(p[:, 0], y[:, 0]))


def test_gradcheck_float64(gen):
    p = torch.randn(5, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(5, 2, dtype=torch.float64, generator=gen)
    w = torch.rand(5, dtype=torch.float64, generator=gen)
    assert torch.autograd.gradcheck(lambda a: weighted_mse_loss(a, y, w), (p,))


def test_errors():
    p, y = torch.zeros(3), torch.zeros(3)
    with pytest.raises(ShapeError, match=r"one per sample"):
        weighted_mse_loss(p, y, torch.ones(4))
    with pytest.raises(ValueError, match="weights must be >= 0"):
        weighted_mse_loss(p, y, torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="weights contains 1 non-finite"):
        weighted_mse_loss(p, y, torch.tensor([1.0, float("nan"), 1.0]))
