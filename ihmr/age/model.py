"""The age regressor: a backbone with a global-pooled feature and a ``linear`` head to one age.

``backbone="resnet50"`` is the DIR / Balanced MSE model (ResNet-50 from scratch, 2048-d pooled
feature, ``Linear(2048, 1)`` named ``linear``). ``backbone="small"`` is a four-block CNN of
configurable width for the CPU demo only (32 x 32 images; feature dimension ``8 * width``): the
same two-stage recipe, a backbone small enough to train in seconds on two cores.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import DataError, check_choice
from ..models.resnet import resnet50

BACKBONES = ("resnet50", "small")


class SmallCNN(nn.Module):
    """Conv-BN-ReLU blocks (widths w, 2w, 4w, 8w; stride 2 from the second), global average pool.

    Input (B, 3, H, W), output (B, 8w).
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(
                    chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1, bias=False
                ),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self.out_dim = chans[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


class AgeRegressor(nn.Module):
    """``backbone.features(x)`` (B, F) -> ``linear`` (F -> 1) -> age (B, 1) in years.

    Args:
        backbone: "resnet50" (the benchmark model) or "small" (the CPU demo).
        width: channel width of the "small" backbone (ignored for ResNet-50).
    """

    def __init__(self, backbone: str = "resnet50", width: int = 16) -> None:
        super().__init__()
        check_choice(backbone, BACKBONES, "model.backbone")
        if backbone == "resnet50":
            self.backbone: Any = resnet50(num_classes=None)
            self.feature_dim = 2048
        else:
            self.backbone = SmallCNN(width)
            self.feature_dim = self.backbone.out_dim
        self.linear = nn.Linear(self.feature_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, F) pooled features."""
        return self.backbone.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


def reset_linear(model: AgeRegressor, seed: int) -> None:
    """Re-initialise ``model.linear`` with PyTorch's default init from a fixed seed (RRT)."""
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / model.feature_dim**0.5
    with torch.no_grad():
        w = torch.empty_like(model.linear.weight, device="cpu").uniform_(-bound, bound, generator=g)
        b = torch.empty_like(model.linear.bias, device="cpu").uniform_(-bound, bound, generator=g)
        model.linear.weight.copy_(w)
        model.linear.bias.copy_(b)


def freeze_for_rrt(model: AgeRegressor, seed: int = 0) -> list[nn.Parameter]:
    """Regressor re-training: freeze everything but a re-initialised ``linear``.

    The backbone's parameters stop requiring gradients and the backbone is put in eval mode (its
    BatchNorm statistics stay those of stage 1). Returns the trainable parameters.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    reset_linear(model, seed)
    for p in model.linear.parameters():
        p.requires_grad_(True)
    model.backbone.eval()
    return list(model.linear.parameters())


def load_dir_state_dict(model: AgeRegressor, state: dict[str, torch.Tensor]) -> None:
    """Load a DIR / Balanced MSE age checkpoint's ``state_dict`` (keys ``module.conv1.weight`` ...
    ``module.linear.weight``) into an :class:`AgeRegressor` with a ResNet-50 backbone."""
    mapped = {}
    for k, v in state.items():
        k = k[len("module.") :] if k.startswith("module.") else k
        mapped[k if k.startswith("linear.") else "backbone." + k] = v
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise DataError(
            f"checkpoint does not fit the age model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}; it must be a DIR ResNet-50 age model"
        )
