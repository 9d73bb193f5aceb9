"""SPIN's HMR regressor head and the full HMR model (ResNet-50 backbone + head).

The head (Kanazawa et al. 2018, as in SPIN's ``models/hmr.py``, nkolot/SPIN) maps a
2048-d image feature to SMPL parameters by iterative error feedback::

    x_0 = [f, pose_0, shape_0, cam_0]                  (2048 + 144 + 10 + 3 = 2205)
    h   = drop2(fc2(drop1(fc1(x_t))))                   (1024, no ReLU, dropout 0.5)
    pose_{t+1} = pose_t + decpose(h)   (144 = 24 x 6-D), shape += decshape(h) (10), cam += deccam(h)

for 3 iterations starting from the mean parameters (``init_pose``, ``init_shape``, ``init_cam``
buffers, SPIN's names). The 6-D pose becomes rotation matrices with SPIN's interleaved layout
(:func:`ihmr.geometry.rot6d_to_matrix`). Parameter names are SPIN's (``fc1``, ``fc2``,
``decpose``, ``decshape``, ``deccam``), so a SPIN ``model_checkpoint.pt`` loads into
:class:`HMR` (backbone keys are torchvision's, shared with :mod:`ihmr.models.resnet`).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from ..errors import DataError, shape_str
from ..geometry import rot6d_to_matrix
from ..io import load_torch_file
from .resnet import resnet50

HEAD_PREFIXES = ("fc1.", "fc2.", "decpose.", "decshape.", "deccam.")
HEAD_BUFFERS = ("init_pose", "init_shape", "init_cam")
NPOSE = 24 * 6
HEAD_KIND = "ihmr-pose-head"


class HMROutput(NamedTuple):
    """Head output: ``rotmat`` (B, 24, 3, 3), ``betas`` (B, 10), ``cam`` (B, 3) weak-perspective
    [s, tx, ty], ``pose6d`` (B, 144) before the Gram-Schmidt step."""

    rotmat: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    pose6d: torch.Tensor


def default_mean_params() -> dict[str, torch.Tensor]:
    """Identity pose (6-D [1, 0, 0, 1, 0, 0] per joint), zero betas, cam [0.9, 0, 0]."""
    return {
        "pose": torch.tensor([1.0, 0, 0, 1, 0, 0]).repeat(24),
        "shape": torch.zeros(10),
        "cam": torch.tensor([0.9, 0.0, 0.0]),
    }


class HMRHead(nn.Module):
    """SPIN's regressor: features (B, feature_dim) -> :class:`HMROutput`.

    Args:
        feature_dim: backbone feature size (2048 for ResNet-50).
        mean_params: dict with ``pose`` (144,) 6-D, ``shape`` (10,), ``cam`` (3,), e.g.
            ``body.mean_params``; defaults to :func:`default_mean_params`.
        n_iter: error-feedback iterations (SPIN: 3).
    """

    def __init__(
        self, feature_dim: int = 2048, mean_params: Mapping[str, Any] | None = None, n_iter: int = 3
    ) -> None:
        super().__init__()
        self.feature_dim = int(feature_dim)
        self.n_iter = int(n_iter)
        self.fc1 = nn.Linear(self.feature_dim + NPOSE + 13, 1024)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(1024, NPOSE)
        self.decshape = nn.Linear(1024, 10)
        self.deccam = nn.Linear(1024, 3)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
        mp = default_mean_params() if mean_params is None else mean_params
        for name, key, size in (
            ("init_pose", "pose", NPOSE),
            ("init_shape", "shape", 10),
            ("init_cam", "cam", 3),
        ):
            v = torch.as_tensor(mp[key], dtype=torch.float32).reshape(-1)
            if v.numel() != size:
                raise DataError(f"mean_params[{key!r}] must have {size} values, got {v.numel()}")
            self.register_buffer(name, v[None].clone())

    def forward(self, features: torch.Tensor, n_iter: int | None = None) -> HMROutput:
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise DataError(
                f"features must have shape (B, {self.feature_dim}), got {shape_str(features.shape)}"
            )
        b = features.shape[0]
        x = features.to(self.fc1.weight.dtype)
        pose = self.init_pose.expand(b, -1)
        shape = self.init_shape.expand(b, -1)
        cam = self.init_cam.expand(b, -1)
        # fc1([f, p, s, c]) = W_f f + b + W_p [p, s, c]: the feature part (93% of fc1's work) is the
        # same in every iteration, so it is computed once (exact up to float rounding).
        w = self.fc1.weight
        xf = nn.functional.linear(x, w[:, : self.feature_dim], self.fc1.bias)
        w_state = w[:, self.feature_dim :]
        for _ in range(self.n_iter if n_iter is None else n_iter):
            h = xf + nn.functional.linear(torch.cat([pose, shape, cam], 1), w_state)
            h = self.drop2(self.fc2(self.drop1(h)))
            pose = pose + self.decpose(h)
            shape = shape + self.decshape(h)
            cam = cam + self.deccam(h)
        rotmat = rot6d_to_matrix(pose.reshape(b, 24, 6))
        return HMROutput(rotmat.reshape(b, 24, 3, 3), shape, cam, pose)


class HMR(nn.Module):
    """ResNet-50 backbone + :class:`HMRHead`; images (B, 3, 224, 224) ImageNet-normalised."""

    def __init__(self, mean_params: Mapping[str, Any] | None = None) -> None:
        super().__init__()

        self.backbone = resnet50(num_classes=None)
        self.head = HMRHead(self.backbone.feature_dim, mean_params)

    def forward(self, images: torch.Tensor) -> HMROutput:
        return self.head(self.backbone.features(images))

    def spin_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict in SPIN's flat key layout (backbone and head keys side by side)."""
        out = dict(self.backbone.state_dict())
        out.update(self.head.state_dict())
        return out

    def load_spin_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        backbone, head = split_spin_state_dict(state)
        load_checked(self.backbone, backbone, "backbone")
        load_checked(self.head, head, "regressor head")


# ---------------------------------------------------------------------------------------------
# checkpoints


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # DataParallel/DDP checkpoints prefix every key with "module."
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def split_spin_state_dict(state: Mapping[str, torch.Tensor]):
    """SPIN's flat state dict -> ``(backbone_state, head_state)``."""
    state = _strip_prefix(state)
    head = {k: v for k, v in state.items() if k.startswith(HEAD_PREFIXES) or k in HEAD_BUFFERS}
    backbone = {k: v for k, v in state.items() if k not in head}
    return backbone, head


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """``load_state_dict`` with one clear error naming missing/unexpected keys and bad shapes.

    BatchNorm ``num_batches_tracked`` counters may be absent (old checkpoints).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad = [
        f"{k}: expected {shape_str(own[k].shape)}, got {shape_str(v.shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or bad:
        parts = []
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", bad),
        ):
            if items:
                more = f" (+{len(items) - 8} more)" if len(items) > 8 else ""
                parts.append(f"{label} {items[:8]}{more}")
        raise DataError(
            f"checkpoint does not fit the {what}: "
            + "; ".join(parts)
            + ". Is it a SPIN model_checkpoint.pt (or an ihmr head checkpoint)?"
        )
    module.load_state_dict(dict(state), strict=False)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with clear errors; returns the checkpoint dict."""
    ckpt = load_torch_file(path)
    if not isinstance(ckpt, dict):
        raise DataError(f"checkpoint {str(path)!r} must hold a dict, got {type(ckpt).__name__}")
    return ckpt


def checkpoint_kind(ckpt: Mapping[str, Any]) -> str:
    """``'ihmr-pose-head'`` (ours), ``'spin'`` (``model`` state dict) or ``'state_dict'``."""
    if ckpt.get("kind") == HEAD_KIND:
        return HEAD_KIND
    if isinstance(ckpt.get("model"), Mapping):
        return "spin"
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return "state_dict"
    raise DataError(
        f"unrecognised checkpoint (keys {sorted(ckpt)[:8]}); expected SPIN's "
        "{'model': state_dict} or an ihmr head checkpoint"
    )


def load_head(path: str | os.PathLike, mean_params: Mapping[str, Any] | None = None) -> HMRHead:
    """The regressor head from our head checkpoint or from a SPIN ``model_checkpoint.pt``.

    The mean-parameter buffers come from the checkpoint when it holds them.
    """
    ckpt = read_checkpoint(path)
    kind = checkpoint_kind(ckpt)
    if kind == HEAD_KIND:
        head_state = ckpt["head"]
    else:
        _, head_state = split_spin_state_dict(ckpt["model"] if kind == "spin" else ckpt)
    if "fc1.weight" not in head_state:
        raise DataError(f"checkpoint {str(path)!r} holds no regressor head (no 'fc1.weight')")
    feature_dim = head_state["fc1.weight"].shape[1] - NPOSE - 13
    head = HMRHead(feature_dim, mean_params)
    load_checked(head, head_state, "regressor head")
    return head.eval()


def load_spin_model(path: str | os.PathLike) -> HMR:
    """The full :class:`HMR` from a SPIN ``model_checkpoint.pt`` (its ``model`` state dict)."""
    ckpt = read_checkpoint(path)
    kind = checkpoint_kind(ckpt)
    if kind == HEAD_KIND:
        raise DataError(
            f"{str(path)!r} is an ihmr head checkpoint without a backbone; images "
            "need a SPIN model_checkpoint.pt (or use cached features)"
        )
    model = HMR()
    model.load_spin_state_dict(ckpt["model"] if kind == "spin" else ckpt)
    return model.eval()


def head_checkpoint(head: HMRHead, **meta: Any) -> dict[str, Any]:
    """Our head checkpoint dict (save with :func:`ihmr.io.torch_save`)."""
    return {"kind": HEAD_KIND, "feature_dim": head.feature_dim, "head": head.state_dict(), **meta}
