"""Fixtures for the pose benchmark tests (see helpers.py for the toy body)."""

from __future__ import annotations

import pytest

from .helpers import ToyBody


@pytest.fixture(scope="session")
def toy_body() -> ToyBody:
    return ToyBody()


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests use small tensors: one intra-op thread avoids OpenMP spin-waiting, which
    costs up to 10x when the 2 cores are shared (measured while other suites ran)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
