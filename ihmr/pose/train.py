"""``ihmr train``: retrain SPIN's HMR head on cached features with MSE, GAI or BMC on the pose.

The released IHMR recipe (docs/protocols.md) re-runs a frozen ResNet-50 on every image; on
cached features only the head remains, so the step is small and launch-bound on a GPU. This loop
is built for that:

- features (float16) and labels live on the device when they fit; each epoch's indices are drawn
  once (deterministic in seed and epoch) and gathered on the device; fixed batch size, the last
  partial batch dropped, so shapes are static (CUDA graphs with ``compile=reduce-overhead``);
- cached augmented views (``data.views``, default on): each draw of a sample picks one of its
  1 + K stored views (same per-epoch generator, so resume stays exact) and trains on that view's
  features and transformed labels (:mod:`ihmr.pose.train_data`); the stored views take (1 + K)
  times the memory of view 0, and features that do not fit on the GPU stay in pinned host memory
  (one copy of the batch per step, no sync);
- the keypoint losses use the body's exact joints-only path (no vertex tensor);
- loss sums stay on the device: the host synchronises every ``log_every`` steps (progress bar and
  NaN check) and once per epoch, never per step (on a GPU the loss library's input checks are
  off, :func:`ihmr.losses.value_checks`; non-finite losses are tracked on the device);
- bf16 autocast for the head's matmuls only (``amp``); losses and body in float32;
- ``compile``: the step (head, body, every loss term) is one graph (``fullgraph=True``; invalid
  fits are masked, not selected, so shapes never depend on the data) and its backward another;
  the optimizer step stays outside (fused Adam on CUDA; see docs/ihmr_train_demo.md);
- ``torchrun``: DDP over the head, sigma's gradient averaged by hand, BMC on the global batch.

Checkpoints (``last.pt``) are written atomically after every epoch with the RNG states; a killed
run resumed with ``resume=`` ends with the weights and metrics of the uninterrupted run. A
non-finite loss stops training naming the epoch, step, batch and the last good checkpoint.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..body import load_body
from ..config import resolve_path, to_dict
from ..errors import ConfigError, NonFiniteError
from ..io import torch_save
from ..losses import noise_parameters, value_checks
from ..models.hmr import HMRHead, head_checkpoint
from ..priors import GMMPrior
from ..runs import (
    NonFiniteLossError,
    RunDir,
    check_loss,
    init_distributed,
    load_checkpoint,
    resolve_device,
)
from ..training import Progress, TrainResult, fit, tensorboard_writer
from .config import PoseTrainConfig
from .jobs import eval_job
from .losses import IHMRLoss, make_keypoint_criteria, make_pose_criterion
from .train_data import epoch_draws, load_train_set

TERMS = ("total", "pose", "betas", "keypoints3d", "keypoints2d", "cam")


class TrainStep(nn.Module):
    """Head -> joints-only body -> :class:`~ihmr.pose.losses.IHMRLoss`; returns the (6,) terms."""

    def __init__(self, head: nn.Module, body: Any, loss: nn.Module, amp: bool) -> None:
        super().__init__()
        self.head, self.loss, self.amp = head, loss, bool(amp)
        self.body = [body]  # not a submodule: its buffers are moved by the caller

    def forward(self, features: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        dev = features.device.type
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=self.amp):
            out = self.head(features.float())
        rot, betas = out.rotmat.float(), out.betas.float()
        with torch.autocast(dev, enabled=False):
            joints49 = self.body[0].joints_only(betas, rot).joints49
            terms = self.loss(rot, betas, out.cam.float(), joints49, batch)
        return torch.stack([terms[k] for k in TERMS])


def warm_body(body: Any, device: torch.device) -> None:
    """Build the body's joints-only path and its casts for ``device`` before any compilation, so
    the compiled step never changes the body's state (that would cost a recompilation)."""
    body.joints_only(
        torch.zeros(1, 10, device=device), torch.eye(3, device=device).expand(1, 24, 3, 3)
    )


def compile_step(
    step_fn: nn.Module, mode: str, backend: str = "inductor", fullgraph: bool = True
) -> Callable:
    """``torch.compile`` of the forward (``fullgraph=True``: a graph break is an error, not a
    silent host sync); AOTAutograd compiles its backward as one graph too. ``mode``: ``default``,
    ``reduce-overhead`` (CUDA graphs) or ``max-autotune`` (inductor only; another ``backend``,
    e.g. ``aot_eager`` for a quick check of the same graphs, ignores it). Under DDP
    (``fullgraph=False``) the wrapper's forward hooks and BMC's target gathering break the graph."""
    if backend != "inductor":
        return torch.compile(step_fn, backend=backend, fullgraph=fullgraph)
    return torch.compile(step_fn, mode=None if mode == "default" else mode, fullgraph=fullgraph)


def _resident(train_set: Any, device: torch.device, limit_gib: float) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    limit = limit_gib * 2**30 if limit_gib > 0 else 0.8 * free
    return train_set.feature_bytes() <= limit


def build_loss(cfg: PoseTrainConfig, all_valid: bool) -> nn.Module:
    """The :class:`IHMRLoss` of ``cfg.loss`` (loads and checks the GAI prior)."""
    lc = cfg.loss
    prior = None
    if lc.kind == "gai" and lc.prior:
        path = resolve_path(lc.prior, cfg.data.root)
        if not path.is_file():
            raise ConfigError(
                f"loss.prior {lc.prior!r} not found: no file {str(path)!r} "
                "(a relative path is read from data.root); fit it with `ihmr "
                "fit-prior <train labels> --key pose --pose-to-rotmat -k 16 -o "
                "<file>` (`ihmr demo` does this for the demo data)"
            )
        prior = GMMPrior.load(path)
    if lc.kind != "mse" and not lc.init_noise_sigma > 0:
        raise ConfigError(
            f"loss.init_noise_sigma must be > 0 (sigma of the balanced pose "
            f"loss), got {lc.init_noise_sigma}"
        )
    if lc.bmc_per_joint and "bmc" not in (lc.kind, lc.keypoints):
        raise ConfigError(
            "loss.bmc_per_joint needs a BMC to act on: loss.kind bmc or loss.keypoints bmc "
            f"(got loss.kind {lc.kind}, loss.keypoints {lc.keypoints})"
        )
    crit = make_pose_criterion(
        lc.kind,
        prior=prior,
        init_noise_sigma=lc.init_noise_sigma,
        learn_noise=lc.learn_noise,
        gather=lc.gather,
        per_joint=lc.bmc_per_joint,
    )
    kp = make_keypoint_criteria(
        lc.keypoints,
        init_noise_sigma=(lc.keypoints3d_init_noise_sigma, lc.keypoints2d_init_noise_sigma),
        learn_noise=lc.learn_noise,
        gather=lc.gather,
        per_joint=lc.bmc_per_joint,
        openpose_weight=lc.openpose_weight,
    )
    weights = {
        "pose": lc.pose_weight,
        "betas": lc.betas_weight,
        "cam": lc.cam_weight,
        "keypoints3d": lc.keypoints3d_weight,
        "keypoints2d": lc.keypoints2d_weight,
        "openpose": lc.openpose_weight,
    }
    return IHMRLoss(lc.kind, weights, crit, all_valid=all_valid, keypoint_criteria=kp)


def _check_cfg(cfg: PoseTrainConfig) -> None:
    o = cfg.optim
    if o.epochs < 1 or o.batch_size < 2:
        raise ConfigError(
            f"optim.epochs must be >= 1 and optim.batch_size >= 2 (BMC compares a "
            f"batch), got {o.epochs} and {o.batch_size}"
        )
    if not (o.lr > 0 and o.sigma_lr >= 0 and o.grad_clip >= 0):
        raise ConfigError("optim.lr must be > 0, optim.sigma_lr and optim.grad_clip >= 0")
    if not 0 <= o.ema < 1:
        raise ConfigError(f"optim.ema must be in [0, 1) (0 = off), got {o.ema}")
    if cfg.log_every < 1:
        raise ConfigError(f"log_every must be >= 1, got {cfg.log_every}")


def train(
    cfg: PoseTrainConfig,
    *,
    resume: bool = False,
    body: Any = None,
    bodies: Any = None,
    callback: Callable[[int, dict], None] | None = None,
    holdout: Any = None,
    init_head: dict | None = None,
) -> TrainResult:
    """Train the head as ``cfg`` says; write the run folder ``cfg.out``; evaluate if configured.

    Returns a :class:`~ihmr.training.TrainResult` whose ``checkpoint`` is ``head.pt`` (the last
    epoch's head, or its EMA) and, with ``cfg.eval.labels``, whose ``eval_metrics`` are the test
    metrics.

    Args:
        cfg: the resolved config.
        resume: continue from ``cfg.out/last.pt`` (same config, same final weights and metrics as
            an uninterrupted run).
        body: the neutral body (default: ``load_body("neutral", cfg.smpl_dir)``).
        bodies: :class:`~ihmr.pose.split.GenderedBodies` for the evaluation (default: loaded).
        callback: called as ``callback(epoch, metrics_row)`` (epoch from 1) after each epoch's
            checkpoint.
        holdout: sample indices over the whole mix left out of training (a validation split,
            :mod:`ihmr.sigma.pose`).
        init_head: a head state dict to start from instead of the mean-pose initialisation
            (a fine-tune from a shared start).
    """
    _check_cfg(cfg)
    t_start = time.perf_counter()
    info = init_distributed()
    device = resolve_device(cfg.device)
    run = RunDir(cfg.out, main=info.is_main)
    run.check_resume(resume)
    run.save_config(cfg)

    if body is None:
        body = load_body("neutral", cfg.smpl_dir)
    train_set = load_train_set(
        cfg.data.train,
        cfg.data.root,
        cfg.data.views,
        body=body,
        fit_loss_threshold=cfg.data.fit_loss_threshold,
        fit_betas_limit=cfg.data.fit_betas_limit,
    )
    if holdout is not None and len(holdout):
        train_set = train_set.without(holdout)
    body = body.to(device)
    warm_body(body, device)
    resident = _resident(train_set, device, cfg.resident_gib)
    data = train_set.to(device, features=resident)
    if not resident and device.type == "cuda":
        data.features = data.features.pin_memory()

    torch.manual_seed(cfg.seed)
    head = HMRHead(train_set.feature_dim, body.mean_params).to(device)
    if init_head is not None:
        head.load_state_dict(init_head)
    loss = build_loss(cfg, train_set.all_valid).to(device)

    sigmas = noise_parameters(loss)
    fused = device.type == "cuda"
    groups = [{"params": list(head.parameters()), "lr": cfg.optim.lr}]
    if sigmas:
        groups.append({"params": sigmas, "lr": cfg.optim.sigma_lr})
    opt = torch.optim.Adam(groups, fused=True) if fused else torch.optim.Adam(groups, foreach=True)
    objects = {"head": head, "optimizer": opt, "loss": loss}
    ema = None
    if cfg.optim.ema > 0:
        ema = copy.deepcopy(head).requires_grad_(False)
        objects["ema"] = ema
    start = 0
    if resume:
        start = int(load_checkpoint(run.last, objects, map_location=device)["epoch"])

    model: nn.Module = head
    if info.world_size > 1:
        model = DDP(head, device_ids=[device.index] if device.type == "cuda" else None)
    amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    step_fn: Any = TrainStep(model, body, loss, amp)
    if cfg.compile != "off":
        step_fn = compile_step(step_fn, cfg.compile, fullgraph=info.world_size == 1)
    tb = tensorboard_writer(run.root / "tb", cfg.tensorboard)

    epochs = cfg.optim.epochs
    history, _ = fit(
        run,
        objects,
        epochs=epochs,
        start=start,
        writer=tb,
        on_epoch=callback,
        train_epoch=lambda epoch: _run_epoch(
            cfg, epoch, step_fn, head, loss, opt, data, resident, device, info, run, ema
        ),
        extra={"loss": cfg.loss.kind, "features_fingerprint": data.source_fingerprint},
    )

    result = TrainResult(
        run.root,
        run.root / "head.pt",
        history,
        info={
            "device": str(device),
            "features_resident": resident,
            "amp": amp,
            "compile": cfg.compile,
            "world_size": info.world_size,
            "samples": len(train_set),
            "views": train_set.views,
        },
    )
    if info.is_main:
        _save_head(
            result.checkpoint,
            head if ema is None else ema,
            loss,
            cfg,
            data.source_fingerprint,
            epochs,
        )
        if cfg.eval.labels:
            result.eval_metrics = evaluate_run(cfg, result.checkpoint, bodies=bodies)
    result.seconds = time.perf_counter() - t_start
    return result


def cosine_lr(base: float, step: int, total: int) -> float:
    """``base * (1 + cos(pi * step / total)) / 2``: from ``base`` at step 0 towards 0."""
    return base * 0.5 * (1.0 + math.cos(math.pi * step / total))


def ema_decay(decay: float, step: int) -> float:
    """The EMA decay at global step ``step`` (0-based), warmed up: ``min(decay, (1+t)/(10+t))``."""
    return min(decay, (1.0 + step) / (10.0 + step))


def _run_epoch(
    cfg, epoch, step_fn, head, loss, opt, data, resident, device, info, run, ema=None
) -> dict:
    """Epoch ``epoch`` (from 1); returns its metrics row (means of the loss terms, sigmas, timing).

    Its draws and its steps' place in the schedules use the 0-based index ``epoch - 1``."""
    t0 = time.perf_counter()
    bs = cfg.optim.batch_size
    e0 = epoch - 1  # epochs before this one
    idx, view = epoch_draws(
        data, e0, cfg.seed, bs, cfg.data.samples_per_epoch, info.world_size, info.rank
    )
    idx = data.rows(idx, view)  # rows of the drawn (sample, view) pairs
    steps = idx.shape[0]
    idx_dev = idx.to(device)
    idx_feat = idx_dev if resident else idx
    sums = torch.zeros(len(TERMS), device=device, dtype=torch.float64)
    bad = torch.full((), -1, dtype=torch.long, device=device)
    params = list(head.parameters())
    ema_params = None if ema is None else list(ema.parameters())
    sigmas = [p for g in opt.param_groups[1:] for p in g["params"]]
    head.train()
    every = cfg.log_every

    def check(step: int) -> None:
        b = bad.clone()
        if info.world_size > 1:
            dist.all_reduce(b, op=dist.ReduceOp.MAX)
        b = int(b)
        if b >= 0:
            last = run.last if run.last.is_file() else None
            check_loss(
                float("nan"), epoch=epoch, step=e0 * steps + b + 1, batch=b, last_checkpoint=last
            )

    # On a GPU the loss library's input checks would cost a host sync per step; ``bad`` below
    # tracks non-finite losses on the device instead (same error, at the next log step).
    on_gpu = torch.device(device).type == "cuda"
    with (
        value_checks(not on_gpu),
        Progress(
            steps, f"epoch {epoch}/{cfg.optim.epochs}", enabled=cfg.progress and info.is_main
        ) as bar,
    ):
        for s in range(steps):
            if cfg.optim.schedule == "cosine":
                opt.param_groups[0]["lr"] = cosine_lr(
                    cfg.optim.lr, e0 * steps + s, cfg.optim.epochs * steps
                )
            f = data.features.index_select(0, idx_feat[s])
            if not resident:
                f = f.to(device, non_blocking=True)
            i = idx_dev[s]
            batch = {k: v.index_select(0, i) for k, v in data.labels.items()}
            try:
                terms = step_fn(f, batch)
            except NonFiniteError as exc:  # the loss library's value check (NaN/inf, sigma)
                _stop_non_finite(exc, epoch, e0 * steps + s + 1, s, run)
            opt.zero_grad(set_to_none=True)
            terms[0].backward()
            if info.world_size > 1 and sigmas:
                _average_grads(sigmas, info.world_size)
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip, foreach=True)
            opt.step()
            if ema_params is not None:
                w = 1.0 - ema_decay(cfg.optim.ema, e0 * steps + s)
                torch._foreach_lerp_(ema_params, [p.detach() for p in params], w)
            t = terms.detach().double()
            sums += t
            bad = torch.where(torch.isfinite(t[0]) | (bad >= 0), bad, s)
            if (s + 1) % every == 0 or s + 1 == steps:
                check(s)
                fields = {"loss": float(t[0])}
                fields.update({k: float(v.detach()) for k, v in loss.sigmas().items()})
                bar.advance((s % every) + 1, **fields)
    if info.world_size > 1:
        dist.all_reduce(sums)
        sums /= info.world_size
    means = (sums / steps).tolist()
    seconds = time.perf_counter() - t0
    row = {f"loss_{k}": v for k, v in zip(TERMS, means, strict=True)}
    row.update({k: float(v.detach()) for k, v in loss.sigmas().items()})
    row.update(
        steps=steps,
        seconds=round(seconds, 3),
        samples_per_s=round(steps * cfg.optim.batch_size * info.world_size / seconds, 1),
    )
    if not all(math.isfinite(v) for v in means):  # belt and braces: the step check raised first
        check(steps - 1)
    return row


def _stop_non_finite(exc: Exception, epoch: int, step: int, batch: int, run: Any) -> None:
    last = (
        f"last good checkpoint: {str(run.last)!r} (resume from it with a lower learning rate)"
        if run.last.is_file()
        else "no checkpoint written yet (the first epoch failed)"
    )
    raise NonFiniteLossError(
        f"non-finite values at epoch {epoch}, global step {step}, batch "
        f"{batch} ({exc}); training stopped; {last}"
    ) from exc


def _average_grads(params: list[torch.Tensor], world: int) -> None:
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def _save_head(
    path: Path,
    head: nn.Module,
    loss: nn.Module,
    cfg: PoseTrainConfig,
    fingerprint: str,
    epochs: int,
) -> Path:
    sigma = None if loss.sigma is None else float(loss.sigma.detach())
    state = head_checkpoint(
        head,
        features_fingerprint=fingerprint,
        loss=cfg.loss.kind,
        sigma=sigma,
        epochs=epochs,
        config=to_dict(cfg),
    )
    state["head"] = {k: v.detach().cpu() for k, v in state["head"].items()}
    return torch_save(path, state)


def evaluate_run(
    cfg: PoseTrainConfig, head_path: Path, bodies: Any = None, out: Path | None = None
) -> dict[str, Any]:
    """``ihmr eval`` of a trained head on ``cfg.eval`` (written to ``<run>/eval``)."""
    res = lambda p: resolve_path(p, cfg.data.root)  # noqa: E731
    split = res(cfg.eval.split)
    if split is not None and not split.is_file():
        split = None  # computed by the evaluation and saved in its folder
    metrics, _ = eval_job(
        res(cfg.eval.labels),
        out or Path(cfg.out) / "eval",
        checkpoint=head_path,
        features=res(cfg.eval.features),
        split=split,
        smpl_dir=cfg.smpl_dir,
        device=None,
        renders=cfg.eval.renders,
        bodies=bodies,
        mpvpe_body=cfg.eval.mpvpe_body,
    )
    return metrics
