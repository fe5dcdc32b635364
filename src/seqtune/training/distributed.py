"""Data-parallel training under torchrun: DistributedDataParallel, gloo on CPU, NCCL on GPU.

`torchrun --nproc_per_node N -m seqtune train CONFIG` (or `seqtune train CONFIG --nproc N`, which starts
torchrun) runs N processes. Every process builds the same epoch batches from the seed and takes one
batch of every N consecutive ones (an epoch is cut to a multiple of N batches; `shard` balances the
real tokens of each process within an optimiser step when it accumulates several batches); each
optimiser step averages the gradients of N x train.grad_accum_steps batches. So a run on N processes
takes the same steps as one process with grad_accum_steps multiplied by N (the same losses, up to
float rounding, without dropout). With `train.max_tokens`, every batch holds about the same number of
(padded) tokens, so the processes get similar work per step either way.

Evaluation is sharded the same way (every N-th length-sorted batch) and the outputs gathered, so every
process computes the same metrics and takes the same decisions (best model, early stopping). Only
rank 0 creates the run directory, writes files and logs; the others log warnings only. A checkpoint
holds the RNG states of every rank; a run resumes on the same number of processes (another number is
refused). Each process builds its own frozen-layer activation cache, over all the data, since its
batches change every epoch.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def start(device: torch.device) -> World:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); a single process otherwise."""
    if not launched_by_torchrun():
        return SINGLE
    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world


def device_for(world: World, device: torch.device) -> torch.device:
    """On GPUs each process takes the one of its local rank."""
    if world.distributed and device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def shard(batches: list[list[int]], world: World, lengths: list[int] | None = None, accum: int = 1,
          micro: int = 0) -> list[list[int]]:
    """This process's batches of an epoch. The epoch is cut to a multiple of `size` batches and read in
    rounds of `size` consecutive batches, one per process: an optimiser step takes `accum` rounds, so
    it averages the same batches whatever process computes which. Within a round, the batch with the
    most real tokens (`lengths` per example) goes to the process with the fewest tokens so far in the
    step: the processes get similar work when `accum` > 1. `micro`: micro-batches each process had done
    when the epoch began (a step can span two epochs)."""
    if not world.distributed:
        return batches
    usable = len(batches) - len(batches) % world.size
    mine = []
    totals = [0] * world.size
    for start in range(0, usable, world.size):
        if micro % accum == 0:
            totals = [0] * world.size  # a new step
        rounds = batches[start:start + world.size]
        tokens = [sum(lengths[i] for i in b) if lengths is not None else 0 for b in rounds]
        biggest_first = sorted(range(world.size), key=lambda j: -tokens[j])
        least_loaded = sorted(range(world.size), key=lambda r: (totals[r], r))
        for j, r in zip(biggest_first, least_loaded):
            totals[r] += tokens[j]
            if r == world.rank:
                mine.append(rounds[j])
        micro += 1
    return mine


def all_gather(value, world: World) -> list:
    """`value` of every rank, in rank order (any picklable object)."""
    if not world.distributed:
        return [value]
    out: list = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def broadcast(value, world: World):
    """Rank 0's `value` on every rank."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(value: float, world: World) -> float:
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world.size


def decorrelate(task, world: World) -> None:
    """Reseed the task's own torch generators (MLM masking) per rank, so that the processes do not draw
    the same random pattern for their different batches; rank 0 keeps the single-process seed."""
    if not world.distributed or world.rank == 0:
        return
    for generator in task.random_generators().values():
        generator.manual_seed(generator.initial_seed() + world.rank)


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The module the loop calls: DistributedDataParallel over `model` when several processes train."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def quiet_logs() -> None:
    """Ranks other than 0 show warnings only (rank 0 tells the run's story once)."""
    logging.getLogger("seqtune").setLevel(logging.WARNING)


class Follower:
    """What a rank other than 0 has instead of the run directory: the same calls, writing nothing. Its
    `path` is a private temporary folder (for a memory-mapped activation cache); `hint` is rank 0's
    run directory, for messages."""

    def __init__(self, hint: str, world: World):
        self.hint = hint
        self.path = Path(tempfile.mkdtemp(prefix=f"seqtune-rank{world.rank}-"))
        self.model_dir = self.path / "model"
        self.checkpoint_dir = self.path / "checkpoints"
        self.metrics: list[dict] = []

    def log(self, message: str) -> None:
        logging.getLogger("seqtune").info(message)

    def add_metrics(self, record: dict) -> None:
        pass

    def set_metrics(self, records: list[dict]) -> None:
        pass

    def write_results(self, results: dict) -> None:
        pass

    def save_model(self, save) -> None:
        pass

    def remove_leftovers(self) -> None:
        pass

    def remove_checkpoints(self) -> None:
        pass

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
