"""Distributed data parallel: process-group setup (torchrun, any number of nodes) and small collectives.

Launch with ``torchrun --nnodes N --nproc-per-node G -m autounet train ...``; the CLI detects the launcher and
passes ``distributed=True``. The backend is NCCL on CUDA and gloo on CPU. The global batch is split across ranks
as the reference does (:func:`autounet.training.sampler.rank_batch_and_oversampling`); only rank 0 writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Rank, world size and local rank of this process (``rank 0 of 1`` without DDP)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0


def setup(device_type: str) -> DistContext:
    """Join the process group started by torchrun (``env://``); NCCL for CUDA, gloo otherwise."""
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = dist.get_node_local_rank(fallback_rank=rank) if hasattr(dist, "get_node_local_rank") else rank
    return DistContext(rank=rank, world=world, local_rank=local)


def teardown(ctx: DistContext) -> None:
    """Leave the process group."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for all ranks (no-op without DDP)."""
    if ctx.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over ranks (a copy; no-op without DDP)."""
    if not ctx.enabled:
        return tensor
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def mean_over_ranks(value: float, ctx: DistContext, device: torch.device) -> float:
    """Average a Python number over ranks."""
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    return float(all_reduce_sum(t, ctx).item() / ctx.world)


def broadcast_int(value: int, ctx: DistContext, device: torch.device) -> int:
    """Rank 0's value of an integer on every rank (used for the run's seed)."""
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return int(t.item())


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on any rank (interrupt propagation)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    return bool(all_reduce_sum(t, ctx).item() > 0)
