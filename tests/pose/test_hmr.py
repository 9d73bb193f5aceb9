"""HMR head and SPIN checkpoint loading: SPIN's key layout loads and runs, bad ones fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ihmr.errors import DataError
from ihmr.io import torch_save
from ihmr.models.hmr import (
    HMR,
    HMRHead,
    head_checkpoint,
    load_checked,
    load_head,
    load_spin_model,
)


def _gram_schmidt_np(x6):
    """Independent SPIN 6-D decoding: columns a1 = x[0::2], a2 = x[1::2]."""
    a1, a2 = x6[0::2], x6[1::2]
    b1 = a1 / np.linalg.norm(a1)
    b2 = a2 - (b1 @ a2) * b1
    b2 = b2 / np.linalg.norm(b2)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=1)


def test_head_matches_hand_loop(gen):
    mp = {
        "pose": torch.randn(144, generator=gen),
        "shape": torch.randn(10, generator=gen),
        "cam": torch.tensor([0.8, 0.1, -0.1]),
    }
    head = HMRHead(16, mp).eval()
    for p in head.parameters():  # make the decoders matter
        p.data.normal_(0, 0.05, generator=gen)
    f = torch.randn(3, 16, generator=gen)
    with torch.no_grad():
        out = head(f)
    sd = {k: v.double().numpy() for k, v in head.state_dict().items()}
    for i in range(3):
        pose, shape, cam = sd["init_pose"][0], sd["init_shape"][0], sd["init_cam"][0]
        for _ in range(3):
            x = np.concatenate([f[i].double().numpy(), pose, shape, cam])
            h = sd["fc1.weight"] @ x + sd["fc1.bias"]
            h = sd["fc2.weight"] @ h + sd["fc2.bias"]
            pose = pose + sd["decpose.weight"] @ h + sd["decpose.bias"]
            shape = shape + sd["decshape.weight"] @ h + sd["decshape.bias"]
            cam = cam + sd["deccam.weight"] @ h + sd["deccam.bias"]
        np.testing.assert_allclose(out.betas[i].numpy(), shape, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out.cam[i].numpy(), cam, rtol=1e-4, atol=1e-5)
        for j in range(24):
            want = _gram_schmidt_np(pose[6 * j : 6 * j + 6])
            np.testing.assert_allclose(out.rotmat[i, j].numpy(), want, atol=1e-4)


def test_spin_checkpoint_layout_loads_and_runs(tmp_path, gen):
    torch.manual_seed(0)
    src = HMR()
    sd = src.spin_state_dict()
    # SPIN's flat layout: torchvision backbone names beside the head's, no nesting, no 'fc'
    for key, shape in [
        ("conv1.weight", (64, 3, 7, 7)),
        ("layer4.2.bn3.running_var", (2048,)),
        ("layer1.0.downsample.0.weight", (256, 64, 1, 1)),
        ("fc1.weight", (1024, 2205)),
        ("decpose.weight", (144, 1024)),
        ("deccam.bias", (3,)),
        ("init_pose", (1, 144)),
        ("init_shape", (1, 10)),
        ("init_cam", (1, 3)),
    ]:
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith(("backbone.", "head.", "fc.")) for k in sd)
    torch_save(tmp_path / "model_checkpoint.pt", {"model": sd, "optimizer": {}, "epoch": 3})
    model = load_spin_model(tmp_path / "model_checkpoint.pt")
    for k, v in model.spin_state_dict().items():
        assert torch.equal(v, sd[k]), k
    img = torch.randn(2, 3, 64, 64, generator=gen)
    src.eval()
    with torch.no_grad():
        a, b = model(img), src(img)
    assert a.rotmat.shape == (2, 24, 3, 3) and a.betas.shape == (2, 10)
    torch.testing.assert_close(a.rotmat, b.rotmat)
    head = load_head(tmp_path / "model_checkpoint.pt")
    torch.testing.assert_close(head(torch.ones(1, 2048)).cam, src.head(torch.ones(1, 2048)).cam)


def test_module_prefix_and_head_checkpoint(tmp_path):
    head = HMRHead(32)
    torch_save(
        tmp_path / "ddp.pt", {"model": {"module." + k: v for k, v in head.state_dict().items()}}
    )
    assert torch.equal(load_head(tmp_path / "ddp.pt").fc1.weight, head.fc1.weight)
    torch_save(tmp_path / "ours.pt", head_checkpoint(head, epoch=1))
    loaded = load_head(tmp_path / "ours.pt")
    assert loaded.feature_dim == 32 and torch.equal(loaded.init_cam, head.init_cam)


def test_bad_checkpoints_name_keys(tmp_path):
    head = HMRHead(32)
    sd = head.state_dict()
    bad = dict(sd)
    del bad["decshape.bias"]
    bad["extra.weight"] = torch.zeros(2)
    bad["deccam.weight"] = torch.zeros(4, 1024)
    torch_save(tmp_path / "bad.pt", {"model": bad})
    with pytest.raises(DataError, match="missing keys"):
        load_head(tmp_path / "bad.pt")
    with pytest.raises(DataError) as exc:
        load_checked(head, bad, "regressor head")
    msg = str(exc.value)
    assert "missing keys ['decshape.bias']" in msg and "extra.weight" in msg
    assert "deccam.weight: expected (3, 1024), got (4, 1024)" in msg
    torch_save(tmp_path / "nohead.pt", {"model": {"conv1.weight": torch.zeros(1)}})
    with pytest.raises(DataError, match="no regressor head"):
        load_head(tmp_path / "nohead.pt")
    with pytest.raises(DataError, match="features must have shape"):
        head(torch.zeros(2, 31))
