"""Tiny regressors as flat parameter vectors, batched over a leading model dimension.

The benchmark trains many small models at once, so a model is a row of a parameter tensor
``theta (..., n_params)`` and the forward and backward passes are written out by hand (no
autograd graph per step). Layouts (row-major):

- ``linear``: ``A = [W | b]`` of shape (d_out, d_in + 1): ``p = W x + b``
  (the same function as ``torch.nn.Linear(d_in, d_out)``).
- ``mlp``: ``A1 = [W1 | b1]`` (hidden, d_in + 1), then ``W2`` (d_out, hidden), then ``b2``
  (d_out): ``p = W2 relu(W1 x + b1) + b2``.

Inputs are given *augmented* with a trailing column of ones, ``u = [x, 1]`` of shape
(..., B, d_in + 1), so the first layer is one matrix product.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..errors import ConfigError, check_choice


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Architecture of one tiny regressor."""

    kind: str = "linear"
    """"linear" or "mlp" (one hidden ReLU layer)."""
    d_in: int = 1
    d_out: int = 1
    hidden: int = 0

    def __post_init__(self) -> None:
        check_choice(self.kind, ("linear", "mlp"), "model kind")
        if self.kind == "mlp" and self.hidden < 1:
            raise ConfigError(f"an mlp needs hidden >= 1, got {self.hidden}")

    @property
    def n_params(self) -> int:
        if self.kind == "linear":
            return self.d_out * (self.d_in + 1)
        return self.hidden * (self.d_in + 1) + self.d_out * self.hidden + self.d_out


def init_params(spec: ModelSpec, rng: np.random.Generator) -> np.ndarray:
    """``torch.nn.Linear``'s default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    weights and biases, drawn from ``rng``; returns (n_params,) float64."""

    def uniform(shape, fan_in):
        bound = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape)

    if spec.kind == "linear":
        return uniform((spec.d_out, spec.d_in + 1), spec.d_in).ravel()
    a1 = uniform((spec.hidden, spec.d_in + 1), spec.d_in)
    w2 = uniform((spec.d_out, spec.hidden), spec.hidden)
    b2 = uniform((spec.d_out,), spec.hidden)
    return np.concatenate([a1.ravel(), w2.ravel(), b2])


def _split(spec: ModelSpec, theta: torch.Tensor):
    lead = theta.shape[:-1]
    if spec.kind == "linear":
        return (theta.reshape(*lead, spec.d_out, spec.d_in + 1),)
    n1 = spec.hidden * (spec.d_in + 1)
    n2 = spec.d_out * spec.hidden
    a1 = theta[..., :n1].reshape(*lead, spec.hidden, spec.d_in + 1)
    w2 = theta[..., n1 : n1 + n2].reshape(*lead, spec.d_out, spec.hidden)
    b2 = theta[..., n1 + n2 :]
    return a1, w2, b2


def forward(spec: ModelSpec, theta: torch.Tensor, u: torch.Tensor):
    """Predictions of every model.

    Args:
        theta: (G, R, n_params) parameters (R models share the inputs of group g).
        u: (G, B, d_in + 1) augmented inputs.
    Returns:
        ``(P (G, R, B, d_out), cache)``; ``cache`` is what :func:`backward` needs.
    """
    parts = _split(spec, theta)
    uu = u.unsqueeze(1)
    if spec.kind == "linear":
        return torch.matmul(uu, parts[0].transpose(-1, -2)), None
    a1, w2, b2 = parts
    h = torch.relu(torch.matmul(uu, a1.transpose(-1, -2)))
    return torch.matmul(h, w2.transpose(-1, -2)) + b2.unsqueeze(-2), h


def backward(
    spec: ModelSpec,
    theta: torch.Tensor,
    u: torch.Tensor,
    cache,
    gP: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """Write ``dL/dtheta`` into ``out[..., :n_params]`` given ``gP = dL/dP`` (G, R, B, d_out)."""
    uu = u.unsqueeze(1)
    lead = theta.shape[:-1]
    if spec.kind == "linear":
        g = torch.matmul(gP.transpose(-1, -2), uu)  # (G, R, d_out, d_in + 1)
        out[..., : spec.n_params] = g.reshape(*lead, -1)
        return out
    a1, w2, b2 = _split(spec, theta)
    h = cache
    n1 = spec.hidden * (spec.d_in + 1)
    n2 = spec.d_out * spec.hidden
    gw2 = torch.matmul(gP.transpose(-1, -2), h)
    gh = torch.matmul(gP, w2) * (h > 0)
    ga1 = torch.matmul(gh.transpose(-1, -2), uu)
    out[..., :n1] = ga1.reshape(*lead, -1)
    out[..., n1 : n1 + n2] = gw2.reshape(*lead, -1)
    out[..., n1 + n2 : spec.n_params] = gP.sum(-2)
    return out


def predict(spec: ModelSpec, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Predictions for plain inputs: theta (G, R, n_params), x (G, N, d_in) -> (G, R, N, d_out)."""
    u = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)
    return forward(spec, theta, u)[0]


def to_torch_module(spec: ModelSpec, params: np.ndarray) -> torch.nn.Module:
    """An ordinary float64 ``nn.Module`` with the parameters of one model ((n_params,) array)."""
    t = torch.as_tensor(np.asarray(params, dtype=np.float64))
    parts = _split(spec, t)
    if spec.kind == "linear":
        lin = torch.nn.Linear(spec.d_in, spec.d_out, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(parts[0][:, :-1])
            lin.bias.copy_(parts[0][:, -1])
        return lin
    a1, w2, b2 = parts
    net = torch.nn.Sequential(
        torch.nn.Linear(spec.d_in, spec.hidden, dtype=torch.float64),
        torch.nn.ReLU(),
        torch.nn.Linear(spec.hidden, spec.d_out, dtype=torch.float64),
    )
    with torch.no_grad():
        net[0].weight.copy_(a1[:, :-1])
        net[0].bias.copy_(a1[:, -1])
        net[2].weight.copy_(w2)
        net[2].bias.copy_(b2)
    return net
