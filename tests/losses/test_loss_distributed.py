"""BMC with targets gathered across two gloo processes equals the single-process global batch."""

from __future__ import annotations

import datetime
import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ihmr.losses import bmc_loss

SIZES = [(3, 5), (0, 4), (4, 3)]  # local batch sizes of ranks 0 and 1, per round
# round 2: samples without a label (valid=) on both ranks; their targets leave every LSE
MASKS = {2: torch.tensor([1.0, 0, 1, 1, 0, 1, 0])}
D, V = 2, 0.6


def global_batch(round_: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = np.random.default_rng(round_)
    n = sum(SIZES[round_])
    return torch.tensor(g.normal(size=(n, D))), torch.tensor(g.normal(size=(n, D)))


def global_weights(round_: int) -> torch.Tensor:
    """Keypoint-style confidences: some coordinates missing, one target without any."""
    g = np.random.default_rng(100 + round_)
    n = sum(SIZES[round_])
    w = g.uniform(0.5, 1.5, (n, D)) * (g.random((n, D)) > 0.3)
    w[-1] = 0.0
    return torch.tensor(w)


def _worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60),  # fail rather than hang if a rank dies
    )
    try:
        results = {}
        for r, sizes in enumerate(SIZES):
            p, y = global_batch(r)
            lo = sum(sizes[:rank])
            local_p = p[lo : lo + sizes[rank]].clone().requires_grad_(True)
            valid = MASKS[r][lo : lo + sizes[rank]] if r in MASKS else None
            per = bmc_loss(
                local_p, y[lo : lo + sizes[rank]], V, gather=True, reduction="none", valid=valid
            )
            mean = bmc_loss(local_p, y[lo : lo + sizes[rank]], V, gather=True, valid=valid)
            mean.backward()
            results[f"per{r}"] = per.detach()
            results[f"mean{r}"] = mean.detach()
            results[f"grad{r}"] = local_p.grad
            # the same with per-coordinate target weights (gathered with the targets)
            w = global_weights(r)[lo : lo + sizes[rank]]
            wp = p[lo : lo + sizes[rank]].clone().requires_grad_(True)
            wmean = bmc_loss(
                wp, y[lo : lo + sizes[rank]], V, gather=True, target_weight=w, reduction="sum"
            )
            wmean.backward()
            results[f"wsum{r}"] = wmean.detach()
            results[f"wgrad{r}"] = wp.grad
            # per block (groups=2: each coordinate its own block), weights gathered too
            gp = p[lo : lo + sizes[rank]].clone().requires_grad_(True)
            gmean = bmc_loss(
                gp, y[lo : lo + sizes[rank]], V, gather=True, target_weight=w, groups=2
            )
            gmean.backward()
            results[f"gmean{r}"] = gmean.detach()
            results[f"ggrad{r}"] = gp.grad
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathered_bmc_equals_global_batch(tmp_path, monkeypatch):
    # pytest imports this file as tests.losses.test_loss_distributed (importlib mode); the spawned
    # processes unpickle _worker by that name, so they need the repository root on sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for r, sizes in enumerate(SIZES):
            p, y = global_batch(r)
            lo, n = sum(sizes[:rank]), sizes[rank]
            p = p.clone().requires_grad_(True)
            valid = MASKS.get(r)
            full = bmc_loss(p, y, V, reduction="none", valid=valid)  # one process, global batch
            torch.testing.assert_close(got[f"per{r}"], full[lo : lo + n].detach())
            k = n if valid is None else valid[lo : lo + n].sum().clamp_min(1)
            mine = full[lo : lo + n].sum() / k if n else full.sum() * 0
            mine.backward()
            torch.testing.assert_close(got[f"mean{r}"], mine.detach())
            torch.testing.assert_close(got[f"grad{r}"], p.grad[lo : lo + n])
            q = global_batch(r)[0].clone().requires_grad_(True)
            wfull = bmc_loss(q, y, V, target_weight=global_weights(r), reduction="none")
            wmine = wfull[lo : lo + n].sum()
            wmine.backward()
            torch.testing.assert_close(got[f"wsum{r}"], wmine.detach())
            torch.testing.assert_close(got[f"wgrad{r}"], q.grad[lo : lo + n])
            q = global_batch(r)[0].clone().requires_grad_(True)
            w = global_weights(r)
            gfull = bmc_loss(q, y, V, target_weight=w, groups=2, reduction="none")
            rows = (w[lo : lo + n] > 0).any(1).sum().clamp_min(1)
            gmine = gfull[lo : lo + n].sum() / rows
            gmine.backward()
            torch.testing.assert_close(got[f"gmean{r}"], gmine.detach())
            torch.testing.assert_close(got[f"ggrad{r}"], q.grad[lo : lo + n])
