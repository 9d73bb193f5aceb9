"""Sigma search for ``ihmr train`` configs (GAI / BMC on the pose, e.g. configs/ihmr/demo_*.yaml).

Validation: 10% of the training samples with ground-truth SMPL, held out per region of the vertex
distance to the mean mesh (:func:`ihmr.sigma.holdout_split` over the IHMR regions of the training
set), never trained on, and scored with the pose report's own balanced metric
(:class:`ihmr.pose.evaluate.BalancedPoseMetrics`): bMPVPE over 100 regions of the held-out
samples' distances, as the test protocol does on the test set. The test set is never read.

Candidates: with ``budget_epochs`` K, one plain-MSE run of the config's full schedule on the
remaining samples is the shared start, and each sigma fine-tunes it for K epochs with its loss;
without, every sigma is a full run from scratch.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import resolve_path
from ..errors import ConfigError, DataError
from ..io import check_writable_dir
from ..models.hmr import HMRHead
from ..pose.demo import PRIOR_FILE, ensure_prior
from ..pose.evaluate import BalancedPoseMetrics, predictions_from_head, run_metrics
from ..pose.features import FeatureStore
from ..pose.spin_data import read_spin_npz
from ..pose.split import GenderedBodies, assign_regions, split_from_distances, vertex_distances
from ..runs import NonFiniteLossError
from .report import write_outputs
from .search import search_sigma
from .validation import holdout_split, validation_score


@dataclasses.dataclass
class PoseValidation:
    """Held-out training samples of a pose config: global indices and, per dataset, the data."""

    holdout: np.ndarray
    """(n,) sample indices over the whole training mix (the order of ``data.train``)."""
    parts: list
    """Per dataset: (labels subset, view-0 features (m, D) float16)."""
    n_train_bins: int

    @classmethod
    def build(cls, cfg: Any, bodies: Any, fraction: float = 0.1, seed: int = 0) -> "PoseValidation":
        if not cfg.data.train:
            raise ConfigError(
                "data.train is empty: the config has no training samples to hold "
                "out; give at least one dataset"
            )
        sets, offset, dist, glob = [], 0, [], []
        for ds in cfg.data.train:
            labels = read_spin_npz(resolve_path(ds.labels, cfg.data.root))
            # ground-truth SMPL only: static fits are pseudo labels, not a validation target
            valid = np.flatnonzero(np.asarray(labels.has_smpl) > 0)
            d = vertex_distances(
                bodies, labels.pose[valid], labels.betas[valid], labels.gender[valid]
            )
            sets.append((labels, FeatureStore(resolve_path(ds.features, cfg.data.root)), valid))
            dist.append(d)
            glob.append(offset + valid)
            offset += len(labels)
        d, g = np.concatenate(dist), np.concatenate(glob)
        if len(d) < 2:
            raise DataError(
                "the training sets hold fewer than 2 samples with ground-truth SMPL "
                "(has_smpl); there is nothing to hold out for a validation score"
            )
        region = assign_regions(d, float(d.min()), float(d.max()))
        _, val = holdout_split(region, fraction, seed)
        holdout = np.sort(g[val])
        parts, offset = [], 0
        for labels, store, _ in sets:
            local = holdout[(holdout >= offset) & (holdout < offset + len(labels))] - offset
            if len(local):
                parts.append((labels.subset(local), np.asarray(store.array(0))[local]))
            offset += len(labels)
        return cls(holdout, parts, int((np.bincount(region) > 0).sum()))

    def score(self, head_state: dict, bodies: Any) -> dict[str, Any]:
        """Balanced pose metrics (bMPVPE etc., mm) of a head on the held-out samples."""
        errors, dist = [], []
        for labels, feats in self.parts:
            head = HMRHead(feats.shape[1], bodies.neutral.mean_params)
            head.load_state_dict(head_state)
            acc, _ = run_metrics(
                predictions_from_head(head, torch.from_numpy(feats), bodies.neutral),
                labels,
                None,
                bodies,
            )
            errors.append(acc.errors)
            dist.append(acc.split.distance)
        split = split_from_distances(np.concatenate(dist), body=bodies.name)
        acc = BalancedPoseMetrics(split)
        acc.update(slice(0, len(split)), np.concatenate(errors))
        metrics = acc.compute()
        validation_score({"bins": int((split.counts > 0).sum()), "bmae": metrics["bMPVPE"]["all"]})
        return metrics


def tune_pose(
    cfg: Any,
    out: Path,
    grid: list[float] | None,
    budget_epochs: int | None,
    fraction: float = 0.1,
    log: Callable[[str], None] = print,
    refine: int = 0,
) -> dict[str, Any]:
    """Search sigma for a pose config; writes ``out``; returns the outputs' paths and result."""
    from ..pose.train import train  # looked up per call (tests)

    if cfg.loss.kind not in ("gai", "bmc", "bmc_mmhuman3d"):
        raise ConfigError(
            f"loss.kind is {cfg.loss.kind!r}, which has no sigma; tune a gai or bmc "
            "config (e.g. configs/ihmr/demo_gai.yaml)"
        )
    if budget_epochs is not None and budget_epochs < 1:
        raise ConfigError(f"--budget-epochs must be >= 1, got {budget_epochs}")
    _ensure_demo_prior(cfg, log)
    grid = grid or [0.02, 0.05, 0.1, 0.2, 0.5]
    bodies = GenderedBodies.load(cfg.smpl_dir)
    val = PoseValidation.build(cfg, bodies, fraction, cfg.seed)
    log(
        f"validation: {len(val.holdout)} held-out training samples "
        f"({val.n_train_bins} non-empty training regions)"
    )
    out = check_writable_dir(out)  # only once the data checked out: no empty folder on an error

    def run(name: str, pose: str, sigma: float, learn: bool, epochs: int, init: dict | None):
        c = copy.deepcopy(cfg)
        c.out, c.progress, c.tensorboard = str(out / "runs" / name), False, False
        c.loss.kind, c.loss.init_noise_sigma, c.loss.learn_noise = pose, sigma, learn
        c.optim.epochs, c.eval.labels = epochs, ""
        shutil.rmtree(c.out, ignore_errors=True)  # our own scratch folder under out/runs
        res = train(c, body=bodies.neutral, bodies=bodies, holdout=val.holdout, init_head=init)
        state = torch.load(res.checkpoint, map_location="cpu", weights_only=True)
        return state["head"], state.get("sigma")

    epochs = cfg.optim.epochs

    ref: dict[str, float] = {}

    def warm() -> dict:
        log(f"shared start: MSE, {epochs} epochs")
        head = run("mse_start", "mse", cfg.loss.init_noise_sigma, False, epochs, None)[0]
        ref["mse"] = val.score(head, bodies)["bMPVPE"]["all"]
        return head

    def score(sigma: float, start: dict | None = None):
        log(f"sigma {sigma:g}: {budget_epochs or epochs} epochs")
        try:
            head, _ = run(
                f"sigma_{sigma:g}", cfg.loss.kind, sigma, False, budget_epochs or epochs, start
            )
        except NonFiniteLossError:
            return float("inf"), None
        m = val.score(head, bodies)
        return m["bMPVPE"]["all"], m

    search = search_sigma(score, grid, refine=refine, warm_start=warm if budget_epochs else None)
    learned = None
    if cfg.loss.learn_noise:  # the config's own learned-sigma run, marked on the plot
        log(f"learned sigma from {cfg.loss.init_noise_sigma:g}")
        t0 = time.perf_counter()
        init = _load_head(out / "runs" / "mse_start") if budget_epochs else None
        head, sig = run(
            "learned", cfg.loss.kind, cfg.loss.init_noise_sigma, True, budget_epochs or epochs, init
        )
        learned = {
            "sigma": float(sig),
            "score": val.score(head, bodies)["bMPVPE"]["all"],
            "seconds": time.perf_counter() - t0,
        }
    chosen = copy.deepcopy(cfg)
    chosen.loss.init_noise_sigma, chosen.loss.learn_noise = search.sigma, False
    chosen.out = f"{cfg.out}_sigma{search.sigma:g}"
    files = write_outputs(
        out,
        search,
        "bMPVPE (mm)",
        chosen,
        f"{cfg.loss.kind}: sigma on held-out training samples",
        learned,
        {
            "task": "pose",
            "validation_samples": int(len(val.holdout)),
            "budget_epochs": budget_epochs,
            "full_epochs": epochs,
        },
        mse=ref.get("mse"),
    )
    return {"search": search, "files": files, "learned": learned}


def _load_head(run_dir: Path) -> dict:
    return torch.load(run_dir / "head.pt", map_location="cpu", weights_only=True)["head"]


def _ensure_demo_prior(cfg: Any, log: Callable[[str], None]) -> None:
    """The demo's GAI prior is fitted by ``ihmr demo``; fit it here too when it is missing."""
    root = Path(cfg.data.root)
    if cfg.loss.kind == "gai" and cfg.loss.prior and (root / "demo.json").is_file():
        path = resolve_path(cfg.loss.prior, root)
        if path == root / PRIOR_FILE and not path.is_file():
            ensure_prior(root, echo=log)
