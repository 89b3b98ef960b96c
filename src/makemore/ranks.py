"""This process among torchrun's: its rank, joining and leaving the process group, and how many torch threads each
of several processes on one machine gets."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Ranks:
    """This process among torchrun's: rank 0 of 1 when it runs alone."""

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        return self.rank == 0  # the one that prints and writes the run folder


def join_ranks(device: torch.device) -> Ranks:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) -> this process's place in the process group, which
    it joins: gloo on the CPU, nccl on GPUs (one per process, by local rank)."""
    if world_size() == 1:
        return Ranks()
    import torch.distributed as dist

    if not dist.is_initialized():
        # torch 2.13: torch._dynamo, first imported after the group exists (by the optimizer, by
        # DistributedDataParallel), keeps a reference to it, so destroy_process_group left gloo's threads running
        # as the process exited, and a rank aborted ("terminate called without an active exception") in CI.
        import torch._dynamo  # noqa: F401

        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def threads_per_process(processes: int) -> int:
    """torch's threads for each of `processes` processes that share this machine's cores (sweep workers, server
    processes): more threads than cores in all, and every process runs slower."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // processes)


def leave_ranks():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # all ranks leave together: a rank that tore its group down while rank 0 still wrote aborted
        dist.destroy_process_group()
