"""Small random bodies in SMPL's layout (generated, a few KB) shared by the body tests."""

from __future__ import annotations

import pytest
import torch

from ihmr.body.files import validate_body
from ihmr.body.model import BodyModel
from ihmr.body.testing import mean_params_arrays, random_body_arrays

N_VERTICES = 200


@pytest.fixture
def body_data():
    """Validated arrays of a random body that ships its 21 surface-point vertex ids."""
    return validate_body(random_body_arrays(N_VERTICES, seed=1, vertex_joint_ids=True), "fixture")


@pytest.fixture
def body64(body_data):
    return BodyModel(body_data, mean_params_arrays(), dtype=torch.float64)


@pytest.fixture
def random_inputs():
    """Betas (B, 10) and axis-angle pose (B, 72) in float64, B = 9."""
    g = torch.Generator().manual_seed(3)
    return (
        torch.randn(9, 10, generator=g, dtype=torch.float64),
        0.6 * torch.randn(9, 72, generator=g, dtype=torch.float64),
    )
