"""The released IHMR loss composition for retraining SPIN's HMR head (docs/protocols.md).

For a batch of B samples with head output (rotation matrices R, betas b, weak-perspective camera
[s, tx, ty]) and the body's 49 SPIN joints J (25 OpenPose + 24 ground-truth joints, metres)::

    L = w_pose L_pose + w_betas L_betas + w_3d L_3d + w_2d L_2d + w_cam L_cam

- ``L_pose`` on the flattened rotation matrices (24 x 9 = 216 values, global orientation
  included) of the samples with a valid fit:
    * ``mse``: the element mean of (R - R_gt)^2 (SPIN's ``criterion_regr``), weight 60;
    * ``gai`` / ``bmc`` / ``bmc_mmhuman3d``: the balanced loss of :mod:`ihmr.losses` with
      ``normalize_by_dim`` (divided by 216), so that its MSE term equals the baseline's element
      mean and the weight 60 means the same thing: ``60 (2v) (T1 + T2) / 216`` (GAI, Eq. 3.12; BMC,
      Eq. 3.14) or mmhuman3d's ``[60 ||p-y||^2 / v + 5 LSE] v / 216`` (the 60 is inside
      the released loss, so its weight is ``pose_weight / 60``).
- ``L_betas``: element mean of (b - b_gt)^2 over valid fits (never balanced).
- ``L_3d``: SPIN's ``keypoint_3d_loss`` on the 24 ground-truth joints: both sets centred at the
  mid-hip (joints 2 and 3), ``sum(conf (J - J_gt)^2) / (n_3d 24 3)`` over samples with 3-D labels.
- ``L_2d``: SPIN's ``keypoint_loss``: joints projected with f = 5000 px and camera translation
  ``[tx, ty, 2 f / (224 s)]``, divided by 112 (crop coordinates in [-1, 1]); the element mean over
  all B x 49 x 2 values of ``conf (x - x_gt)^2``, OpenPose confidences times ``openpose_weight``.
- ``L_cam``: SPIN's camera prior, mean of ``exp(-10 s)^2``.

Balanced keypoint losses (``keypoints="bmc"``, beyond the paper and the release): the 3-D and
2-D keypoint terms become BMC (Eq. 3.14, no prior needed) on the flattened joint vectors (24 x 3
mid-hip centred; 49 x 2 crop coordinates), each with its own noise scale, with the joints'
confidences as per-coordinate target weights (:func:`ihmr.losses.bmc_loss` ``target_weight``: a
joint missing from a label does not enter the distances to that label) and divided by the
dimension, so the MSE term equals SPIN's element mean above and the weights mean the same.

Masks are applied as weights (the balanced losses take the valid-fit mask themselves), so shapes
are fixed and no step needs a host synchronisation: the step compiles as one graph.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ConfigError, DataError, check_choice
from ..losses import BMCLoss, GAILoss
from ..spin import FOCAL_LENGTH, IMG_RES, weak_perspective_to_translation

POSE_DIM = 24 * 9
POSE_LOSSES = ("mse", "gai", "bmc", "bmc_mmhuman3d")
KEYPOINT_LOSSES = ("mse", "bmc")


def project_joints(
    joints: torch.Tensor, cam: torch.Tensor, focal: float = FOCAL_LENGTH, res: int = IMG_RES
) -> torch.Tensor:
    """(B, J, 3) metres, (B, 3) [s, tx, ty] -> (B, J, 2) crop coordinates in [-1, 1]: SPIN's
    ``perspective_projection`` of ``pred_cam_t`` (Eq. (1)-(2) of :mod:`ihmr.spin`), divided by
    ``res / 2``."""
    t = weak_perspective_to_translation(cam, focal, res)
    p = joints + t[:, None, :]
    return focal * p[..., :2] / p[..., 2:3] / (res / 2.0)


def keypoints2d_loss(
    pred: torch.Tensor, gt: torch.Tensor, openpose_weight: float = 0.0, gt_weight: float = 1.0
) -> torch.Tensor:
    """SPIN's 2-D keypoint loss: pred (B, 49, 2), gt (B, 49, 3) [x, y, conf] in [-1, 1]."""
    conf = gt[..., 2:3]
    scale = torch.ones(49, 1, dtype=conf.dtype, device=conf.device)
    scale[:25] = openpose_weight
    scale[25:] = gt_weight
    return (conf * scale * (pred - gt[..., :2]).pow(2)).mean()


def keypoints3d_loss(pred: torch.Tensor, gt: torch.Tensor, has3d: torch.Tensor) -> torch.Tensor:
    """SPIN's 3-D keypoint loss: pred (B, 24, 3), gt (B, 24, 4) [x, y, z, conf], has3d (B,) float.

    Mid-hip centred; mean over the ``has3d`` samples' 24 x 3 values (0 when there are none).
    """
    pred_c, gt_c = _centred3d(pred, gt)
    per = (gt[..., 3:4] * (pred_c - gt_c).pow(2)).sum((1, 2))
    return (has3d * per).sum() / (has3d.sum().clamp_min(1.0) * pred.shape[1] * 3)


def _centred3d(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gt_c = gt[..., :3] - 0.5 * (gt[:, 2:3, :3] + gt[:, 3:4, :3])
    pred_c = pred - 0.5 * (pred[:, 2:3] + pred[:, 3:4])
    return pred_c, gt_c


def balanced_keypoints3d_loss(
    pred: torch.Tensor, gt: torch.Tensor, has3d: torch.Tensor, criterion: nn.Module
) -> torch.Tensor:
    """BMC twin of :func:`keypoints3d_loss`: pred (B, 24, 3), gt (B, 24, 4), has3d (B,) float.

    The (B, 72) mid-hip centred joints, target weights = confidence x has3d per coordinate.
    """
    pred_c, gt_c = _centred3d(pred, gt)
    b = pred.shape[0]
    w = (gt[..., 3:4] * has3d[:, None, None]).expand(b, pred.shape[1], 3)
    return criterion(pred_c.reshape(b, -1), gt_c.reshape(b, -1), w.reshape(b, -1))


def balanced_keypoints2d_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    criterion: nn.Module,
    openpose_weight: float = 0.0,
    gt_weight: float = 1.0,
) -> torch.Tensor:
    """BMC twin of :func:`keypoints2d_loss`: pred (B, 49, 2), gt (B, 49, 3) [x, y, conf].

    The (B, 98) joint coordinates, target weights = confidence x (``openpose_weight`` for the 25
    OpenPose joints, ``gt_weight`` for the 24 ground-truth joints); weight 0 = not used. With
    ``openpose_weight`` 0 (released) the OpenPose joints are left out before the loss: a
    coordinate no target has adds the same constant to every log-density, so the value is the
    same (scaled back to the 98-d normalisation) at half the cost.
    """
    b = pred.shape[0]
    if openpose_weight == 0:
        w = (gt[:, 25:, 2:3] * gt_weight).expand(b, 24, 2)
        out = criterion(
            pred[:, 25:].reshape(b, -1), gt[:, 25:, :2].reshape(b, -1), w.reshape(b, -1)
        )
        return out * (48.0 / 98.0) if getattr(criterion, "normalize_by_dim", False) else out
    scale = torch.ones(49, 1, dtype=gt.dtype, device=gt.device)
    scale[:25] = openpose_weight
    scale[25:] = gt_weight
    w = (gt[..., 2:3] * scale).expand(b, 49, 2)
    return criterion(pred.reshape(b, -1), gt[..., :2].reshape(b, -1), w.reshape(b, -1))


def masked_mse(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Element mean of (pred - gt)^2 over the rows with ``valid`` (B,) float (0 if none)."""
    per = (pred - gt).pow(2).reshape(pred.shape[0], -1)
    return (valid * per.sum(1)).sum() / (valid.sum().clamp_min(1.0) * per.shape[1])


def camera_prior(cam: torch.Tensor) -> torch.Tensor:
    """SPIN's camera prior: mean of exp(-10 s)^2 over the batch; cam (B, 3)."""
    return torch.exp(-10.0 * cam[:, 0]).pow(2).mean()


def make_pose_criterion(
    kind: str,
    *,
    prior: Any = None,
    init_noise_sigma: float = 1.0,
    learn_noise: bool = True,
    gather: bool = True,
    per_joint: bool = False,
) -> nn.Module | None:
    """The balanced pose loss module (None for ``mse``); checks the prior's dimension (216).

    ``per_joint``: BMC balances each joint's 9 rotation-matrix entries against the same joint of
    the batch (``groups=24``); it does not change ``mse`` or ``gai`` (no batch estimate) and is
    refused with the released form ``bmc_mmhuman3d``."""
    check_choice(kind, POSE_LOSSES, "loss.kind")
    if per_joint and kind == "bmc_mmhuman3d":
        raise ConfigError(
            "loss.bmc_per_joint changes the paper's BMC (loss.kind bmc), not the released "
            "form bmc_mmhuman3d; use loss.kind bmc or set loss.bmc_per_joint to false"
        )
    if kind == "mse":
        return None
    if kind == "bmc":
        return BMCLoss(
            init_noise_sigma,
            learn_noise,
            normalize_by_dim=True,
            gather=gather,
            groups=24 if per_joint else None,
        )
    if kind == "bmc_mmhuman3d":
        return BMCLoss.mmhuman3d(init_noise_sigma, learn_noise, gather=gather)
    if prior is None:
        raise ConfigError(
            "loss.kind=gai needs loss.prior: a GMM fitted on the training poses as "
            "rotation matrices, e.g. `ihmr fit-prior train.npz --key pose "
            "--pose-to-rotmat -k 16 -o prior.npz`"
        )
    d = int(prior.means.shape[-1]) if prior.means.ndim == 2 else 1
    if d != POSE_DIM:
        raise DataError(
            f"the GAI prior has label dimension {d}, but the pose loss works on "
            f"flattened rotation matrices (24 x 9 = {POSE_DIM}); fit the prior with "
            "`ihmr fit-prior ... --pose-to-rotmat`"
        )
    return GAILoss(prior, init_noise_sigma, learn_noise, normalize_by_dim=True)


def make_keypoint_criteria(
    kind: str,
    *,
    init_noise_sigma: tuple[float, float] = (0.1, 0.1),
    learn_noise: bool = True,
    gather: bool = True,
    per_joint: bool = False,
    openpose_weight: float = 0.0,
) -> tuple[nn.Module, nn.Module] | None:
    """The 3-D and 2-D keypoint BMC modules for ``keypoints="bmc"`` (None for ``mse``).

    ``init_noise_sigma``: (3-D in metres, 2-D in crop units [-1, 1]). ``per_joint``: each joint's
    3 (2) coordinates are balanced against the same joint of the batch (``groups`` 24, and 24
    or 49 for the 2-D joints: the OpenPose joints take part when ``openpose_weight`` is not 0).
    """
    if kind not in KEYPOINT_LOSSES:
        raise ConfigError(
            f"loss.keypoints must be one of {list(KEYPOINT_LOSSES)}, got {kind!r} "
            "(the balanced keypoint losses are BMC: they need no prior)"
        )
    if kind == "mse":
        return None
    for s, dim in zip(init_noise_sigma, ("3", "2"), strict=True):
        if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
            raise ConfigError(
                f"loss.keypoints{dim}d_init_noise_sigma must be a finite number > 0, got {s!r}"
            )
    groups = (24, 24 if openpose_weight == 0 else 49) if per_joint else (None, None)
    return tuple(
        BMCLoss(s, learn_noise, normalize_by_dim=True, gather=gather, groups=g)
        for s, g in zip(init_noise_sigma, groups, strict=True)
    )


class IHMRLoss(nn.Module):
    """The composed IHMR loss; owns the balanced pose criterion (and so sigma).

    Args:
        pose: "mse", "gai", "bmc" or "bmc_mmhuman3d".
        weights: mapping with ``pose``, ``betas``, ``keypoints3d``, ``keypoints2d``, ``cam``
            (defaults: 60, 0.06, 300, 300, 60) and ``openpose`` (default 0).
        criterion: the module from :func:`make_pose_criterion` (None for mse).
        all_valid: every training fit is valid (lets the balanced losses skip the valid mask).
        keypoint_criteria: (3-D, 2-D) BMC modules from :func:`make_keypoint_criteria` to balance
            the keypoint terms too (None: SPIN's MSE keypoint losses).
    """

    DEFAULTS = {
        "pose": 60.0,
        "betas": 0.06,
        "keypoints3d": 300.0,
        "keypoints2d": 300.0,
        "cam": 60.0,
        "openpose": 0.0,
    }

    def __init__(
        self,
        pose: str = "mse",
        weights: Mapping[str, float] | None = None,
        criterion: nn.Module | None = None,
        all_valid: bool = False,
        keypoint_criteria: tuple[nn.Module, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        check_choice(pose, POSE_LOSSES, "loss.kind")
        if (pose == "mse") != (criterion is None):
            raise ConfigError(
                f"pose loss {pose!r} needs {'no' if pose == 'mse' else 'a'} "
                "balanced criterion; build it with make_pose_criterion"
            )
        unknown = set(weights or {}) - set(self.DEFAULTS)
        if unknown:
            raise ConfigError(
                f"unknown loss weight(s) {sorted(unknown)}; valid: {sorted(self.DEFAULTS)}"
            )
        self.kind = pose
        self.weights = {**self.DEFAULTS, **dict(weights or {})}
        self.criterion = criterion
        self.all_valid = bool(all_valid)
        self.kp_criteria = None if keypoint_criteria is None else nn.ModuleList(keypoint_criteria)

    @property
    def sigma(self) -> torch.Tensor | None:
        return None if self.criterion is None else self.criterion.noise_sigma

    def sigmas(self) -> dict[str, torch.Tensor]:
        """Every noise scale by name: ``sigma`` (pose), ``sigma_kp3d``, ``sigma_kp2d``."""
        out = {} if self.criterion is None else {"sigma": self.criterion.noise_sigma}
        if self.kp_criteria is not None:
            out["sigma_kp3d"] = self.kp_criteria[0].noise_sigma
            out["sigma_kp2d"] = self.kp_criteria[1].noise_sigma
        return out

    def pose_loss(self, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """pred, gt (B, 216) flattened rotation matrices, valid (B,) float."""
        if self.criterion is None:
            return masked_mse(pred, gt, valid)
        if self.all_valid:
            return self.criterion(pred, gt)
        # Invalid fits are masked inside the loss (same value as selecting the valid rows, but
        # fixed shapes: no host synchronisation, one compiled graph).
        return self.criterion(pred, gt, valid=valid)

    def _pose_scale(self) -> float:
        # BMCLoss.mmhuman3d already carries the released weight 60 inside (mse_weight = 60).
        return self.weights["pose"] / 60.0 if self.kind == "bmc_mmhuman3d" else self.weights["pose"]

    def forward(
        self,
        rotmat: torch.Tensor,
        betas: torch.Tensor,
        cam: torch.Tensor,
        joints49: torch.Tensor,
        batch: Mapping[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Loss terms (weighted) and their sum ``total``.

        Args:
            rotmat (B, 24, 3, 3), betas (B, 10), cam (B, 3): head outputs.
            joints49 (B, 49, 3): the body's SPIN joints of (betas, rotmat), metres.
            batch: ``pose`` (B, 216) flattened GT rotation matrices, ``betas`` (B, 10),
                ``valid`` (B,) 1.0 where the fit is valid, ``kp3d`` (B, 24, 4), ``has3d`` (B,),
                ``kp2d`` (B, 49, 3) in [-1, 1] crop coordinates.
        """
        w = self.weights
        rot = rotmat.float().reshape(rotmat.shape[0], -1)
        betas, cam, joints49 = betas.float(), cam.float(), joints49.float()
        kp2d = project_joints(joints49, cam)
        if self.kp_criteria is None:
            k3 = keypoints3d_loss(joints49[:, 25:], batch["kp3d"], batch["has3d"])
            k2 = keypoints2d_loss(kp2d, batch["kp2d"], w["openpose"])
        else:
            c3, c2 = self.kp_criteria
            k3 = balanced_keypoints3d_loss(joints49[:, 25:], batch["kp3d"], batch["has3d"], c3)
            k2 = balanced_keypoints2d_loss(kp2d, batch["kp2d"], c2, w["openpose"])
        terms = {
            "pose": self._pose_scale() * self.pose_loss(rot, batch["pose"], batch["valid"]),
            "betas": w["betas"] * masked_mse(betas, batch["betas"], batch["valid"]),
            "keypoints3d": w["keypoints3d"] * k3,
            "keypoints2d": w["keypoints2d"] * k2,
            "cam": w["cam"] * camera_prior(cam),
        }
        terms["total"] = sum(terms.values())
        return terms
