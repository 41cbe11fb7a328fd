"""Multi-GPU / multi-node training with DistributedDataParallel, launched by ``torchrun``.

Single-process and distributed runs share one code path: :func:`setup` returns world size 1 when
no ``torchrun`` environment is present. NCCL is used on GPUs, gloo on CPUs. Example (2 GPUs)::

    torchrun --nproc_per_node 2 -m hyreslib.hyres.train_cli ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current() -> World:
    """The process group already set up (by :func:`setup` or by the caller), or a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), int(os.environ.get("LOCAL_RANK", dist.get_rank())), dist.get_world_size())
    return World()


def setup(device: str = "auto") -> tuple[World, torch.device]:
    """Join the ``torchrun`` process group if there is one; pick this rank's device."""
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    world = current()
    if use_cuda:
        torch.cuda.set_device(world.local_rank)
        return world, torch.device("cuda", world.local_rank)
    return world, torch.device("cpu")


def barrier() -> None:
    if current().distributed:
        dist.barrier()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def make_loader(dataset, global_batch: int, seed: int = 0, workers: int = 0, shuffle: bool = True,
                drop_last: bool = True) -> torch.utils.data.DataLoader:
    """A DataLoader whose order depends only on (seed, epoch), split across ranks.

    One path for 1 or N processes: a DistributedSampler (with explicit world size, so no process
    group is needed for one process) hands rank r the items r, r+N, ... of the epoch's permutation,
    and each rank takes ``global_batch / N`` of them per step. The union of the ranks' batches at a
    step is therefore the single-process batch, which is what makes DDP match one process.
    """
    from torch.utils.data import DataLoader, DistributedSampler

    world = current()
    if global_batch % world.size:
        raise ValueError(f"global batch {global_batch} is not divisible by the world size {world.size}")
    drop_last = drop_last and len(dataset) >= global_batch
    sampler = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=shuffle, seed=seed,
                                 drop_last=drop_last)
    return DataLoader(dataset, batch_size=global_batch // world.size, sampler=sampler, num_workers=workers,
                      drop_last=drop_last, persistent_workers=workers > 0)
