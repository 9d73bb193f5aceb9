"""Hu et al. network: shapes, shared-encoder parameter names, upsampling."""

import torch

from ihmr.depth.model import HuDepthNet, upsample_to
from ihmr.models.resnet import resnet50


def test_full_model_uses_the_shared_resnet50_names():
    net = HuDepthNet()
    enc = {k: v.shape for k, v in net.encoder.state_dict().items()}
    ref = {k: v.shape for k, v in resnet50(num_classes=None).state_dict().items()}
    assert enc == ref  # a torchvision / DIR ResNet-50 checkpoint loads into the encoder
    assert net.conv.in_channels == 2048 and net.conv.out_channels == 1024
    assert [m.conv1.out_channels for m in (net.up1, net.up2, net.up3, net.up4)] == [
        512,
        256,
        128,
        64,
    ]
    assert net.refine[0][0].in_channels == 128 and net.refine[-1].out_channels == 1


def test_demo_model_output_is_half_the_input(gen):
    net = HuDepthNet(width=0.125, encoder_layers=(1, 1, 1, 1), encoder_width=0.125).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 48, 64, generator=gen))
        assert out.shape == (2, 1, 24, 32)
        assert net(torch.randn(1, 3, 228, 304, generator=gen)).shape == (1, 1, 114, 152)


def test_upsample_keeps_constant_maps_and_corners():
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    up = upsample_to(x, (3, 5))
    assert up.shape == (1, 1, 3, 5)
    assert up[0, 0, 0, 0] == 0 and up[0, 0, -1, -1] == 3  # align_corners keeps the corners
    assert float(up[0, 0, 1, 2]) == 1.5
