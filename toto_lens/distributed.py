"""Distributed plumbing under `torchrun`: one process per device, DDP or FSDP, rank 0 speaks.

Nothing home-made: `torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK, torch.distributed does the rest
(gloo on CPU, nccl on GPU). Without those variables everything here is a no-op and training runs in one
process. `wrap` applies activation checkpointing first, then DDP or FSDP, as torchtitan's
`parallelize_llama` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world=world, local_rank=local, device=dev)


def teardown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def all_sum(info: DistInfo, values: torch.Tensor) -> torch.Tensor:
    """Sum a float64 tensor over processes (a copy; the input is left alone)."""
    out = values.detach().to(torch.float64).clone()
    if info.active:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def checkpoint_activations(model: nn.Module) -> nn.Module:
    """Recompute each block's activations in the backward pass instead of keeping them (full activation
    checkpointing, `torch.utils.checkpoint`, non-reentrant). Each block's `forward` is wrapped in place,
    so parameter names, and with them state-dict keys and checkpoints, stay what they were; FSDP's hooks
    run around the wrapped forward, so the recomputation sees the gathered weights."""
    from torch.utils.checkpoint import checkpoint

    for block in model.blocks:
        inner = block.forward

        def forward(*args, _inner=inner, **kwargs):
            return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

        block.forward = forward
    return model


def wrap(model: nn.Module, info: DistInfo, fsdp: bool, activation_checkpointing: bool = False) -> nn.Module:
    """Activation checkpointing if asked, then DDP, or FSDP2 (`fully_shard` per block, then the root)
    for models that do not fit one device."""
    if activation_checkpointing:
        checkpoint_activations(model)
    if not info.active:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)
