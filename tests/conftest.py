"""Shared fixtures: seeded generators, dtype/device parametrisation, tolerances in one table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# Tolerances, one table for the whole suite: dtype -> (rtol, atol).
TOL = {
    torch.float64: (1e-9, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.bfloat16: (2e-2, 1e-2),
    torch.float16: (1e-2, 1e-3),
}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # CI has 2 cores; keep torch from oversubscribing them.
    torch.set_num_threads(2)
    yield
