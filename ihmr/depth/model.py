"""Hu et al. (WACV 2019) encoder-decoder for monocular depth, as used by NYUD2-DIR.

- Encoder E: ResNet-50 (the shared :mod:`ihmr.models.resnet`, torchvision parameter names), its
  four blocks at 1/4, 1/8, 1/16, 1/32 of the input with 256, 512, 1024, 2048 channels.
- Decoder D: 1x1 conv 2048 -> 1024 (+BN, ReLU), then four up-projections to 512, 256, 128, 64
  channels, ending at 1/2 of the input (block 1's size x 2).
- Multi-scale feature fusion (MFF): each encoder block up-projected to that same size with 16
  channels, concatenated (64) and fused by a 5x5 conv.
- Refinement R: D (64) and MFF (64) concatenated (128), two 5x5 conv-BN-ReLU (128), a 5x5 conv to
  1 channel: the depth map in metres at half the input resolution ((114, 152) for 304 x 228).

Up-projection (Laina et al.): bilinear upsampling to the target size, then
``relu(bn(conv3x3(relu(bn(conv5x5(x))))) + bn(conv5x5(x)))``.

``width`` scales every decoder / MFF / refinement channel count (1.0 = the paper's); with
``encoder_layers`` the encoder can be a shallower ResNet of the same class and channel widths
(``(3, 4, 6, 3)`` = ResNet-50). Both exist only for the CPU demo and are recorded in the config.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError
from ..models.resnet import Bottleneck, ResNet


class UpProjection(nn.Module):
    """Up-projection block: (B, cin, h, w) -> (B, cout, H, W) for a given output size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv1_2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1_2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cin, cout, 5, padding=2, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        a = self.bn1_2(self.conv1_2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(a + self.bn2(self.conv2(x)))


class NarrowResNet(ResNet):
    """The shared ResNet with every channel count scaled by ``width`` (stem 64 * width, stages
    (64, 128, 256, 512) * width * 4 out); same blocks, stages and parameter names. CPU demo only."""

    def __init__(self, layers: Sequence[int], width: float) -> None:
        nn.Module.__init__(self)
        base = max(4, int(round(64 * width)))
        self.inplanes = base
        self.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(base, layers[0])
        self.layer2 = self._make_layer(base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(base * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = base * 8 * Bottleneck.expansion
        self.fc = None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 5, padding=2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class HuDepthNet(nn.Module):
    """(B, 3, H, W) ImageNet-normalised images -> (B, 1, H/2, W/2) depth in metres.

    Args:
        width: multiplier of the decoder / fusion / refinement channels (1.0 = Hu et al.).
        encoder_layers: bottleneck blocks per ResNet stage ((3, 4, 6, 3) = ResNet-50).
        encoder_width: encoder channel multiplier (1.0 = the shared ResNet-50; else
            :class:`NarrowResNet`, for the CPU demo).
    """

    def __init__(
        self,
        width: float = 1.0,
        encoder_layers: Sequence[int] = (3, 4, 6, 3),
        encoder_width: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0 < width <= 4:
            raise ConfigError(f"width must be in (0, 4], got {width}")
        if len(encoder_layers) != 4 or min(encoder_layers) < 1:
            raise ConfigError(
                f"encoder_layers must be 4 positive block counts, got {encoder_layers}"
            )
        c = lambda n: max(4, int(round(n * width)))  # noqa: E731
        if encoder_width == 1.0:
            self.encoder = ResNet(tuple(encoder_layers), num_classes=None)
        else:
            self.encoder = NarrowResNet(tuple(encoder_layers), encoder_width)
        e = self.encoder.feature_dim // 8  # block 1 channels (256 for ResNet-50)
        # Decoder D.
        self.conv = nn.Conv2d(8 * e, c(1024), 1, bias=False)
        self.bn = nn.BatchNorm2d(c(1024))
        self.up1, self.up2 = UpProjection(c(1024), c(512)), UpProjection(c(512), c(256))
        self.up3, self.up4 = UpProjection(c(256), c(128)), UpProjection(c(128), c(64))
        # Multi-scale feature fusion.
        self.mff = nn.ModuleList(UpProjection(cin, c(16)) for cin in (e, 2 * e, 4 * e, 8 * e))
        self.mff_conv = _conv_bn_relu(4 * c(16), c(64))
        # Refinement R.
        self.refine = refinement(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine(self.refine_input(x))

    def refine_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images -> (B, 2 c(64), H/2, W/2): decoder and fusion features, the input
        of the refinement R (what the depth demo caches to re-train R alone)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"input must be (B, 3, H, W) images, got {tuple(x.shape)}")
        b1, b2, b3, b4 = self.encoder.stages(x)
        out = (x.shape[2] // 2, x.shape[3] // 2)  # = block 1 size x 2 at 228 x 304
        d = F.relu(self.bn(self.conv(b4)))
        d = self.up1(d, b3.shape[2:])
        d = self.up2(d, b2.shape[2:])
        d = self.up3(d, b1.shape[2:])
        d = self.up4(d, out)
        m = torch.cat([up(b, out) for up, b in zip(self.mff, (b1, b2, b3, b4), strict=True)], dim=1)
        m = self.mff_conv(m)
        return torch.cat([d, m], dim=1)


def refinement(width: float = 1.0) -> nn.Sequential:
    """Hu et al.'s refinement R: (B, 2 c(64), h, w) -> (B, 1, h, w) depth in metres, two 5x5
    conv-BN-ReLU of c(128) channels and a 5x5 conv to one channel (c(n) = round(n * width))."""
    c = lambda n: max(4, int(round(n * width)))  # noqa: E731
    return nn.Sequential(
        _conv_bn_relu(c(64) * 2, c(128)),
        _conv_bn_relu(c(128), c(128)),
        nn.Conv2d(c(128), 1, 5, padding=2, bias=True),
    )


def pixel_regressor(in_channels: int = 3, hidden: int = 32) -> nn.Sequential:
    """A per-pixel depth regressor: three 1x1 convs (``hidden`` channels, ReLU), (B, C, H, W) ->
    (B, 1, H, W) metres. It sees one pixel at a time, so it can be trained on random pixels. The
    depth demo's R (:mod:`ihmr.depth.rrt`, ``head="pixel"``) reads the haze cue with it at the
    input resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, hidden, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, 1, 1),
    )


def upsample_to(pred: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear upsampling of (B, 1, h, w) predictions to the test resolution (align_corners,
    as the DIR evaluation)."""
    if tuple(pred.shape[-2:]) == tuple(size):
        return pred
    return F.interpolate(pred, size=tuple(size), mode="bilinear", align_corners=True)
