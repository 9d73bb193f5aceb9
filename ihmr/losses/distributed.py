"""Gathering BMC's targets across ``torch.distributed`` ranks.

With data parallel training each rank sees only its local batch; BMC's Monte-Carlo estimate of
``int N(y; p, vI) p_train(y) dy`` (Eq. 3.13) improves with the number of targets, so the targets
of all ranks are gathered and every local prediction is compared with the *global* batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` when none is set up."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_targets(target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``target`` ``(B_r, d)`` from every rank; local batch sizes may differ.

    Returns ``(targets, offset)``: the global targets ``(sum_r B_r, d)`` in rank order and the
    index of this rank's first row in them, so local sample ``i``'s own target is row
    ``offset + i``. This rank's rows are the caller's tensor itself (autograd is kept); the other
    ranks' rows are constants. Without an initialised process group (or with one rank) this
    returns ``(target, 0)``. Every rank must call it (it is a collective).
    """
    rank, world = world_info()
    if world == 1:
        return target, 0
    n_local = torch.tensor([target.shape[0]], dtype=torch.long, device=target.device)
    sizes_t = [torch.zeros_like(n_local) for _ in range(world)]
    dist.all_gather(sizes_t, n_local)
    sizes = [int(s) for s in sizes_t]
    # all_gather needs equal shapes: pad every rank's block to the largest local batch.
    width = max(sizes)
    padded = torch.cat(
        [target.detach(), target.new_zeros((width - target.shape[0],) + tuple(target.shape[1:]))]
    )
    blocks = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(blocks, padded.contiguous())
    parts = [blocks[r][: sizes[r]] for r in range(world)]
    parts[rank] = target
    return torch.cat(parts, 0), sum(sizes[:rank])
