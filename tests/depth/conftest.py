"""Depth tests run torch on one thread: on a shared 2-core machine the convolutions of the tiny
networks are several times faster than with two contending threads."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
