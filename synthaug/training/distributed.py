"""Data-parallel generator training under ``torchrun`` (torch.distributed: gloo on CPU, NCCL on GPU).

Every trainer (``synthaug train context|translate|style|segmenter``) runs unchanged under::

    torchrun --standalone --nproc_per_node 2 -m synthaug.cli.main train context --out runs/ctx ...
    # several machines, shared file system for --out:
    torchrun --nnodes 2 --node_rank $NODE_RANK --nproc_per_node 4 --master_addr $HEAD --master_port 29500 \\
        -m synthaug.cli.main train context --out runs/ctx ...

What happens (see :func:`distribute_step`):

- the process group is created from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``);
  with CUDA each rank uses GPU ``LOCAL_RANK`` and NCCL, otherwise gloo;
- DistributedDataParallel semantics without the module wrapper: rank 0's initial parameters and
  buffers are broadcast to every rank, and every optimiser averages its parameters' gradients over the
  ranks right before stepping (an optimiser step pre-hook with one flattened all-reduce), so all ranks
  keep identical weights. The ``DistributedDataParallel`` wrapper itself is not used because GAN steps
  call their networks several times per iteration with separate backward passes (discriminator on
  detached fakes, then generator), which the wrapper's once-per-forward reducer does not support;
- each rank draws its own batches (its generator is seeded with ``seed`` and its rank), so the effective
  batch is ``batch_size x world_size``;
- only rank 0 writes the loss log, sample grids, checkpoints and the exported weights; losses are
  averaged over ranks before logging.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

__all__ = ["DistContext", "context", "init_from_env", "distribute_step", "is_main", "barrier", "all_mean"]


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context() -> DistContext:
    """The current rank/world (one process when torch.distributed is not initialised)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistContext()


def is_main() -> bool:
    return context().is_main


def init_from_env(device: torch.device | str | None = None) -> DistContext:
    """Join the process group torchrun describes (no-op without ``WORLD_SIZE`` > 1). Returns the context."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistContext()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return context()


def barrier() -> None:
    if context().active:
        import torch.distributed as dist

        dist.barrier()


def all_mean(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each value averaged over ranks (unchanged in one process)."""
    ctx = context()
    if not ctx.active or not values:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    flat = torch.stack([torch.as_tensor(values[k], dtype=torch.float64).detach().reshape(()) for k in keys])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    return {k: flat[i] for i, k in enumerate(keys)}


def _average_grads(params: list[nn.Parameter], world: int) -> None:
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def distribute_step(step: Any) -> Any:
    """Make ``step`` (a :class:`~synthaug.training.loop.TrainStep`) data-parallel across the ranks.

    Broadcasts rank 0's parameters and buffers of ``step.modules`` and registers on every optimiser a step
    pre-hook that averages its parameters' gradients over the ranks. Returns ``step``.
    No-op in one process.
    """
    ctx = context()
    if not ctx.active:
        return step
    import torch.distributed as dist

    for module in step.modules.values():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)
    for opt in step.optimizers.values():
        params = [p for g in opt.param_groups for p in g["params"]]

        def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any, _params: list = params) -> None:
            _average_grads(_params, ctx.world_size)

        opt.register_step_pre_hook(hook)
    return step
