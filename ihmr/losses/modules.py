"""``nn.Module`` twins of the Balanced MSE losses: they own the noise scale and the priors.

Each module holds ``noise_sigma`` (an ``nn.Parameter`` when ``learn_noise``, else a buffer) and
calls the pure function with ``noise_var = noise_sigma**2`` (paper Sec. 3.5: sigma is learned
jointly with the model). Priors are buffers, so ``.to(device)``, ``.double()`` and
``state_dict`` carry them. Give sigma its own optimizer group (see :func:`noise_parameters`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import DataError, NonFiniteError, check_positive
from ._common import check_reduction
from .bmc import bmc_loss, check_groups
from .bni import bni_loss, prepare_bins
from .gai import PreparedGMM, gai_loss, prepare_gmm


class _BalancedMSE(nn.Module):
    def __init__(
        self,
        init_noise_sigma: float,
        learn_noise: bool,
        mse_weight: float,
        balance_weight: float,
        normalize_by_dim: bool,
        reduction: str,
    ) -> None:
        super().__init__()
        check_positive(init_noise_sigma, "init_noise_sigma")
        check_reduction(reduction)
        sigma = torch.tensor(float(init_noise_sigma), dtype=torch.get_default_dtype())
        if learn_noise:
            self.noise_sigma = nn.Parameter(sigma)
        else:
            self.register_buffer("noise_sigma", sigma)
        self.mse_weight = float(mse_weight)
        self.balance_weight = float(balance_weight)
        self.normalize_by_dim = bool(normalize_by_dim)
        self.reduction = reduction

    @property
    def noise_var(self) -> torch.Tensor:
        """``sigma**2`` (0-d tensor, differentiable when sigma is learnable)."""
        return self.noise_sigma**2

    def _kwargs(self) -> dict[str, Any]:
        return dict(
            mse_weight=self.mse_weight,
            balance_weight=self.balance_weight,
            normalize_by_dim=self.normalize_by_dim,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        learn = isinstance(self.noise_sigma, nn.Parameter)
        return (
            f"noise_sigma={float(self.noise_sigma.detach()):.4g}, learn_noise={learn}, "
            f"mse_weight={self.mse_weight:g}, balance_weight={self.balance_weight:g}, "
            f"normalize_by_dim={self.normalize_by_dim}, reduction={self.reduction!r}"
        )


class BMCLoss(_BalancedMSE):
    """Balanced MSE, batch Monte-Carlo (Eq. 3.14); module twin of :func:`bmc_loss`.

    Args:
        init_noise_sigma: initial sigma (> 0).
        learn_noise: learn sigma (``nn.Parameter``) or keep it fixed (buffer).
        mse_weight, balance_weight, normalize_by_dim, reduction, gather, groups: see
            :func:`bmc_loss`.
    """

    def __init__(
        self,
        init_noise_sigma: float = 1.0,
        learn_noise: bool = True,
        *,
        mse_weight: float = 1.0,
        balance_weight: float = 1.0,
        normalize_by_dim: bool = False,
        reduction: str = "mean",
        gather: bool = False,
        groups: int | None = None,
    ) -> None:
        super().__init__(
            init_noise_sigma, learn_noise, mse_weight, balance_weight, normalize_by_dim, reduction
        )
        self.gather = bool(gather)
        if groups is not None:
            check_groups(groups, groups)  # a positive integer; divisibility is checked per call
        self.groups = groups

    @classmethod
    def mmhuman3d(
        cls,
        init_noise_sigma: float = 1.0,
        learn_noise: bool = True,
        *,
        reduction: str = "mean",
        gather: bool = True,
    ) -> "BMCLoss":
        """The BMC of mmhuman3d's IHMR release (``BMCLossMD``, weights 60 and 5, all-gather).

        Per sample ``[60 ||p-y||^2 / v + 5 logsumexp_j(-||p-y_j||^2 / (2v))] * v.detach() / L``
        with ``L`` the label dimension (216 for 24 flattened rotation matrices), i.e.
        ``mse_weight = 60, balance_weight = 2.5, normalize_by_dim = True`` here. Its balancing
        term is 24 times weaker relative to the MSE term than in the paper's BMC.
        """
        return cls(
            init_noise_sigma,
            learn_noise,
            mse_weight=60.0,
            balance_weight=2.5,
            normalize_by_dim=True,
            reduction=reduction,
            gather=gather,
        )

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        target_weight: torch.Tensor | None = None,
        valid=None,
    ) -> torch.Tensor:
        return bmc_loss(
            pred,
            target,
            self.noise_var,
            gather=self.gather,
            target_weight=target_weight,
            valid=valid,
            groups=self.groups,
            **self._kwargs(),
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", gather={self.gather}, groups={self.groups}"


class GAILoss(_BalancedMSE):
    """Balanced MSE, GMM analytic integration (Eq. 3.12); module twin of :func:`gai_loss`.

    The prior is eigendecomposed once here and kept as buffers ``gmm_log_weights`` (K,),
    ``gmm_means`` (K, d), ``gmm_eigvals`` (K, d), ``gmm_eigvecs`` (K, d, d), in torch's default
    dtype (float32); they follow ``.to()`` and are cast to the prediction's dtype per call.

    Args:
        prior: a GMM (``weights``, ``means``, ``covariances``) or a :class:`PreparedGMM`.
        init_noise_sigma, learn_noise: as in :class:`BMCLoss`.
        mse_weight, balance_weight, normalize_by_dim, reduction: see :func:`gai_loss`.
    """

    def __init__(
        self,
        prior: Any,
        init_noise_sigma: float = 1.0,
        learn_noise: bool = True,
        *,
        mse_weight: float = 1.0,
        balance_weight: float = 1.0,
        normalize_by_dim: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            init_noise_sigma, learn_noise, mse_weight, balance_weight, normalize_by_dim, reduction
        )
        gmm = prepare_gmm(prior)
        for name, value in zip(gmm._fields, gmm, strict=True):
            self.register_buffer(f"gmm_{name}", value)

    @property
    def prior(self) -> PreparedGMM:
        return PreparedGMM(self.gmm_log_weights, self.gmm_means, self.gmm_eigvals, self.gmm_eigvecs)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, valid=None) -> torch.Tensor:
        return gai_loss(pred, target, self.prior, self.noise_var, valid=valid, **self._kwargs())

    def extra_repr(self) -> str:
        k, d = self.gmm_means.shape
        return f"K={k}, d={d}, " + super().extra_repr()


class BNILoss(_BalancedMSE):
    """Balanced MSE, bin-based numerical integration (Eq. 3.16); twin of :func:`bni_loss`.

    Args:
        bin_centers: ``(Nb,)`` or ``(Nb, d)``; kept as buffer ``bin_centers`` (Nb, d).
        bin_weights: ``(Nb,)`` densities >= 0; kept as buffer ``bin_weights``.
        init_noise_sigma, learn_noise: as in :class:`BMCLoss`.
        mse_weight, balance_weight, normalize_by_dim, reduction: see :func:`bni_loss`.
    """

    def __init__(
        self,
        bin_centers,
        bin_weights,
        init_noise_sigma: float = 1.0,
        learn_noise: bool = True,
        *,
        mse_weight: float = 1.0,
        balance_weight: float = 1.0,
        normalize_by_dim: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            init_noise_sigma, learn_noise, mse_weight, balance_weight, normalize_by_dim, reduction
        )
        c = torch.as_tensor(bin_centers)
        dim = 1 if c.ndim == 1 else int(c.shape[-1])
        c, w = prepare_bins(bin_centers, bin_weights, dim, torch.get_default_dtype(), "cpu")
        if not bool(torch.isfinite(c).all() & torch.isfinite(w).all()):
            raise NonFiniteError("bin_centers and bin_weights must be finite")
        if bool((w < 0).any()) or not bool((w > 0).any()):
            raise DataError("bin_weights must be >= 0 with at least one > 0")
        self.register_buffer("bin_centers", c)
        self.register_buffer("bin_weights", w)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bni_loss(
            pred, target, self.bin_centers, self.bin_weights, self.noise_var, **self._kwargs()
        )


def noise_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The learnable ``noise_sigma`` parameters of every balanced loss inside ``module``.

    Use them for a separate optimizer group (paper: sigma lr 1e-2) that LR schedules can skip::

        sigmas = noise_parameters(criterion)
        opt = torch.optim.Adam([{"params": model.parameters(), "lr": 1e-4},
                                {"params": sigmas, "lr": 1e-2}])
    """
    return [
        m.noise_sigma
        for m in module.modules()
        if isinstance(m, _BalancedMSE) and isinstance(m.noise_sigma, nn.Parameter)
    ]
