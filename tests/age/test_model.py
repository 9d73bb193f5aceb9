"""Age model: DIR checkpoint names load; RRT freezing helper; shapes."""

from __future__ import annotations

import pytest
import torch

from ihmr.age.model import AgeRegressor, freeze_for_rrt, load_dir_state_dict


def test_dir_checkpoint_keys_load_into_resnet50():
    src = AgeRegressor("resnet50")
    assert src.linear.in_features == 2048
    dir_state = {}
    for k, v in src.state_dict().items():  # DIR names: module.conv1.weight ... module.linear.weight
        name = k[len("backbone.") :] if k.startswith("backbone.") else k
        dir_state["module." + name] = v.clone()
    dst = AgeRegressor("resnet50")
    load_dir_state_dict(dst, dir_state)
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k
    from ihmr.errors import DataError

    with pytest.raises(DataError, match="missing"):
        load_dir_state_dict(dst, {"module.linear.weight": dir_state["module.linear.weight"]})


def test_freeze_for_rrt_and_output_shape():
    m = AgeRegressor("small", width=4)
    old = m.linear.weight.detach().clone()
    trainable = freeze_for_rrt(m, seed=1)
    assert [p.shape for p in trainable] == [m.linear.weight.shape, m.linear.bias.shape]
    assert not torch.equal(old, m.linear.weight)
    assert all(not p.requires_grad for p in m.backbone.parameters()) and not m.backbone.training
    assert m(torch.zeros(2, 3, 16, 16)).shape == (2, 1)
    w1 = m.linear.weight.detach().clone()
    freeze_for_rrt(m, seed=1)
    assert torch.equal(w1, m.linear.weight)  # the re-initialisation is seeded
