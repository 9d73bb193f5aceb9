"""Balanced MSE losses (Ren et al., CVPR 2022, Sec. 3.5) and the reweighting baseline.

Pure functions (:func:`bmc_loss`, :func:`gai_loss`, :func:`bni_loss`, :func:`weighted_mse_loss`)
and ``nn.Module`` twins that own the learnable noise scale (:class:`BMCLoss`, :class:`GAILoss`,
:class:`BNILoss`). Every balanced loss returns ``(2v).detach()`` times the balanced NLL, with
weights on its two terms; see each function for the exact value.
"""

from ._common import value_checks
from .bmc import bmc_loss
from .bni import bni_loss
from .distributed import gather_targets
from .gai import PreparedGMM, gai_loss, prepare_gmm
from .modules import BMCLoss, BNILoss, GAILoss, noise_parameters
from .weighted import weighted_mse_loss

__all__ = [
    "BMCLoss",
    "BNILoss",
    "GAILoss",
    "PreparedGMM",
    "bmc_loss",
    "bni_loss",
    "gai_loss",
    "gather_targets",
    "noise_parameters",
    "prepare_gmm",
    "value_checks",
    "weighted_mse_loss",
]
