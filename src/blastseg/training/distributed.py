"""Training on several processes, as ``torchrun --nproc_per_node N -m blastseg train ...`` starts
them: PyTorch's DistributedDataParallel, NCCL on CUDA (each process its GPU), gloo on the CPU.

Every rank builds the same network from the same seed (DDP also copies rank 0's weights at the
start), draws the same global batch indices and trains on its share of them; gradients are
averaged across ranks, so every rank holds the same weights after each step. Validation Dice is
summed over the ranks' shares of the validation images, and the time spent is the slowest rank's,
so every rank takes the same decisions (best epoch, learning rate, stopping). Only rank 0 writes
the run folder; every rank reads it when resuming.

>>> Ranks().main, Ranks(rank=1, world=2).main
(True, False)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's rank among ``world`` training processes (``local``: its rank on this machine)."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """Rank 0, the one that writes the run folder and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_environment() -> Ranks:
    """The ranks ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process without them."""
    return Ranks(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def join(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (once) and answer the device this rank trains on: its own GPU on
    CUDA (NCCL), the CPU otherwise (gloo)."""
    if not ranks.active:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(ranks.local)
        device = torch.device("cuda", ranks.local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """The module the training steps call: ``model`` itself, or its DDP wrapper across the ranks."""
    if not ranks.active:
        return model
    # an encoder cut short (depth < 5) keeps the layers it no longer runs: they get no gradient
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)


def share_buffers(model: torch.nn.Module, ranks: Ranks) -> None:
    """Give every rank rank 0's buffers (BatchNorm's running statistics). DDP copies them at the
    start of each step, so after the last step of an epoch each rank holds its own."""
    if ranks.active:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def summed(values: list[float], ranks: Ranks, device: torch.device | None = None) -> list[float]:
    """``values`` added up over every rank (the same list on each); ``device`` is where the
    backend reduces (NCCL: the rank's GPU)."""
    if not ranks.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def largest(value: float, ranks: Ranks, device: torch.device | None = None) -> float:
    """The largest of every rank's ``value``."""
    if not ranks.active:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def wait_for_all(ranks: Ranks) -> None:
    if ranks.active:
        dist.barrier()


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names and values (what a checkpoint file holds, too)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def weight_digests(model: torch.nn.Module, ranks: Ranks) -> list[str]:
    """The :func:`state_digest` of every rank's weights (in rank order): equal when the ranks agree."""
    mine = state_digest(model.state_dict())
    if not ranks.active:
        return [mine]
    gathered: list[str | None] = [None] * ranks.world
    dist.all_gather_object(gathered, mine)
    return [str(d) for d in gathered]


def leave(ranks: Ranks) -> None:
    if ranks.active and dist.is_initialized():
        dist.destroy_process_group()
