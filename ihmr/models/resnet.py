"""ResNet-50 written with torchvision's parameter names.

torchvision cannot be installed beside the CPU torch build we use, so the backbone is our own; its
``state_dict`` keys (``conv1.weight``, ``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``,
``fc.weight`` ...) match torchvision's ``resnet50`` exactly, so torchvision, SPIN and DIR
checkpoints load into it. :meth:`ResNet.features` returns the globally pooled 2048-d feature
(SPIN's and DIR's regressor input).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Bottleneck(nn.Module):
    """torchvision's v1.5 bottleneck: stride on the 3x3 convolution."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * self.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * self.expansion),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with bottleneck blocks. ``num_classes=None`` drops the ``fc`` layer."""

    def __init__(
        self, layers: Sequence[int] = (3, 4, 6, 3), num_classes: int | None = 1000
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = 512 * Bottleneck.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self.inplanes, planes, stride)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of ``layer1`` .. ``layer4`` (256, 512, 1024, 2048 channels)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 2048) globally pooled features."""
        return torch.flatten(self.avgpool(self.stages(x)[-1]), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return f if self.fc is None else self.fc(f)


def resnet50(num_classes: int | None = None) -> ResNet:
    """ResNet-50 (torchvision layout); ``num_classes=None`` returns 2048-d pooled features."""
    return ResNet((3, 4, 6, 3), num_classes=num_classes)
