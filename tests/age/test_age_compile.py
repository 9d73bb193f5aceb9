"""The age stage-2 step (linear head + loss) is one graph for every loss kind (no host sync)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.age.config import RRT_LOSSES, LossConfig


@pytest.mark.parametrize("kind", RRT_LOSSES)
def test_age_step_has_no_graph_break(kind):
    from ihmr.age.criteria import build_criterion
    from ihmr.age.train import _Head

    torch._dynamo.reset()
    cfg = LossConfig(kind=kind)
    ages = np.random.default_rng(0).uniform(0, 100, 400)
    head = _Head(torch.nn.Linear(16, 1), build_criterion(cfg, ages, (0, 101)))
    g = torch.Generator().manual_seed(0)
    ex = torch._dynamo.explain(head)(
        torch.randn(32, 16, generator=g), torch.rand(32, generator=g) * 100
    )
    assert (ex.graph_break_count, ex.graph_count) == (0, 1), [r.reason for r in ex.break_reasons]
    torch._dynamo.reset()
