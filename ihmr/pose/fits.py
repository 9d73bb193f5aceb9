"""Which static fits become training labels: the 2-D fitting loss and the IHMR release's rule.

Neither SPIN nor the IHMR release stores a fit's quality next to ``static_fits/<name>_fits.npy``:
both recompute it every training step from the fit and the sample's 2-D keypoints (SPIN:
nkolot/SPIN ``train/trainer.py``, ``SMPLify.get_fitting_loss``, threshold ``smplify_threshold``;
the release: open-mmlab/mmhuman3d ``models/architectures/mesh_estimator.py``,
``BodyModelEstimator.run_registration``, ``registrant.evaluate(...)['keypoint2d_loss']`` summed
per sample, threshold 10 hard-coded). We compute the same loss once per training row (sample and
cached view) when the training set is loaded:

1. the fit's 49 joints ``J`` (SPIN's 25 OpenPose + 24 ground-truth joints) from the neutral body;
2. the camera translation ``t`` that best puts the 24 ground-truth joints onto their 2-D keypoints
   ``k_j`` (pixels of the 224 px crop) with weights ``c_j`` (the keypoints' confidence) under a
   pinhole camera (focal ``f = 5000``, principal point ``o = (112, 112)``): the weighted linear
   least squares of SPIN's ``estimate_translation_np``, per joint and axis
   ``f t_x + (o_x - u_j) t_z = (u_j - o_x) Z_j - f X_j`` (same for y);
3. projections ``p_j = f (J_j + t)_{xy} / (J_j + t)_z + o``, both ``p`` and ``k`` mapped to
   ``2 x / 223 - 1``;
4. per coordinate ``d = (p - k)^2`` and the release's ``KeypointMSELoss(sigma=100)``, a
   Geman-McClure of the *squared* error, ``s^2 d^2 / (s^2 + d^2)``, weighted by ``c_j`` and summed
   over joints and both coordinates; the five keypoints the release ignores (``neck_openpose``,
   ``right_hip_openpose``, ``left_hip_openpose``, ``right_hip_extra``, ``left_hip_extra``) weigh 0.

The rule (release): a fit is a valid pose/betas label when its loss is below
``fit_loss_threshold`` (10) or the sample has ground-truth SMPL; a fit's betas are all zeroed
when any ``|beta| > fit_betas_limit`` (3); ground-truth SMPL (e.g. mpi_inf_3dhp) replaces the fit.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..spin import FOCAL_LENGTH, IMG_RES

GMOF_SIGMA = 100.0
#: indices (SPIN's 49-joint order) of the keypoints the release leaves out of the fitting loss
IGNORED_KEYPOINTS = (1, 9, 12, 25 + 2, 25 + 3)


def estimate_translation(
    joints: torch.Tensor,
    keypoints: torch.Tensor,
    conf: torch.Tensor,
    focal: float = FOCAL_LENGTH,
    img_res: int = IMG_RES,
) -> torch.Tensor:
    """Camera translation (B, 3) bringing ``joints`` (B, J, 3) m onto ``keypoints`` (B, J, 2) px
    with weights ``conf`` (B, J), by weighted least squares (float64). Rows whose system is
    singular (e.g. no visible joint) get NaN."""
    j, k, w = joints.double(), keypoints.double(), conf.double().clamp_min(0)
    o = img_res / 2.0
    zeros = torch.zeros_like(w)
    rows, rhs = [], []
    for axis in (0, 1):
        q = torch.stack(
            [
                torch.full_like(w, focal) if axis == 0 else zeros,
                torch.full_like(w, focal) if axis == 1 else zeros,
                o - k[..., axis],
            ],
            -1,
        )  # (B, J, 3)
        rows.append(q)
        rhs.append((k[..., axis] - o) * j[..., 2] - focal * j[..., axis])
    q = torch.cat(rows, 1)  # (B, 2J, 3)
    c = torch.cat(rhs, 1)  # (B, 2J)
    ww = torch.cat([w, w], 1)  # weight sqrt(conf) on both sides of each row: conf in the normals
    a = torch.einsum("bn,bni,bnj->bij", ww, q, q)
    b = torch.einsum("bn,bni,bn->bi", ww, q, c)
    t, info = torch.linalg.solve_ex(a, b)
    bad = (info != 0) | ~torch.isfinite(t).all(-1)
    return torch.where(bad[:, None], torch.full_like(t, math.nan), t)


def fitting_loss(
    joints49: torch.Tensor,
    keypoints2d: torch.Tensor,
    focal: float = FOCAL_LENGTH,
    img_res: int = IMG_RES,
    sigma: float = GMOF_SIGMA,
) -> torch.Tensor:
    """The release's 2-D fitting loss (B,) of fits with joints ``joints49`` (B, 49, 3) m against
    ``keypoints2d`` (B, 49, 3): crop coordinates in [-1, 1] plus confidence (the training rows'
    ``kp2d``). See the module docstring for the formula. NaN where no translation exists."""
    kp = keypoints2d.double()
    px = (kp[..., :2] + 1.0) * (img_res / 2.0)
    conf = kp[..., 2]
    t = estimate_translation(joints49[:, 25:], px[:, 25:], conf[:, 25:], focal, img_res)
    p = joints49.double() + t[:, None, :]
    proj = focal * p[..., :2] / p[..., 2:3] + img_res / 2.0
    scale = 2.0 / (img_res - 1)
    d = ((proj - px) * scale) ** 2  # the offsets of the two [-1, 1] maps cancel
    g = sigma**2 * d**2 / (sigma**2 + d**2)
    keep = torch.ones(kp.shape[1], dtype=kp.dtype, device=kp.device)
    keep[list(IGNORED_KEYPOINTS)] = 0.0
    return ((conf * keep)[..., None] * g).sum((1, 2))


def fit_losses(
    body: Any,
    rotmat: torch.Tensor,
    betas: torch.Tensor,
    keypoints2d: torch.Tensor,
    chunk: int = 8192,
) -> torch.Tensor:
    """(R,) float64 fitting losses of R fits (``rotmat`` (R, 24, 3, 3), ``betas`` (R, 10)) against
    their rows' ``keypoints2d`` (R, 49, 3), chunked; joints from ``body`` (the neutral body)."""
    out = torch.empty(len(rotmat), dtype=torch.float64)
    run = getattr(body, "joints_only", None)
    with torch.no_grad():
        for a in range(0, len(rotmat), chunk):
            b = min(a + chunk, len(rotmat))
            o = run(betas[a:b], rotmat[a:b]) if run else body(betas=betas[a:b], pose=rotmat[a:b])
            out[a:b] = fitting_loss(o.joints49, keypoints2d[a:b]).cpu()
    return out


def fit_label_rows(
    gt: dict[str, torch.Tensor] | None,
    fit: dict[str, torch.Tensor],
    has_gt: torch.Tensor,
    body: Any,
    loss_threshold: float = 10.0,
    betas_limit: float = 3.0,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The training rows of a dataset with static fits, by the release's rule.

    Args:
        gt: row tensors (``pose`` (R, 216), ``betas`` (R, 10), ...) from the label file; may be
            None when no row has ground truth (``has_gt`` all false).
        fit: the same rows with the fits' pose and betas (views: the fits augmented like the view).
        has_gt: (R,) bool, the row's sample has ground-truth SMPL.
        body: neutral body for the fits' joints (only used when ``loss_threshold`` is finite).
        loss_threshold: fits with a loss at or above this are not pose/betas labels (inf: all are).
        betas_limit: zero a fit's betas when any ``|beta|`` exceeds this (inf: never).

    Returns:
        ``(rows, loss)``: ``fit``'s rows with ``pose``/``betas`` from ``gt`` where ``has_gt``,
        extreme fit betas zeroed, ``valid = has_gt | (loss < loss_threshold)``; ``loss`` (R,)
        float64, NaN on ground-truth rows (not computed).
    """
    has_gt = has_gt.bool()
    loss = torch.full((len(has_gt),), math.nan, dtype=torch.float64)
    need = ~has_gt
    if math.isfinite(loss_threshold) and bool(need.any()):
        idx = torch.nonzero(need).flatten()
        loss[idx] = fit_losses(
            body, fit["pose"][idx].reshape(-1, 24, 3, 3), fit["betas"][idx], fit["kp2d"][idx]
        )
        ok = loss < loss_threshold  # NaN (no translation) is never valid
    else:
        ok = torch.ones(len(has_gt), dtype=torch.bool)
    betas = fit["betas"].clone()
    betas[(betas.abs() > betas_limit).any(-1)] = 0.0
    rows = dict(fit)
    rows["betas"] = betas
    if bool(has_gt.any()):
        if gt is None:
            raise ValueError("fit_label_rows: rows with ground truth need the ground-truth rows")
        rows["pose"] = torch.where(has_gt[:, None], gt["pose"], fit["pose"])
        rows["betas"] = torch.where(has_gt[:, None], gt["betas"], betas)
    rows["valid"] = (has_gt | ok).to(fit["valid"].dtype)
    return rows, loss
