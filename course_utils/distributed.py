"""Data-parallel plumbing for a training script launched with ``torchrun`` (DistributedDataParallel).

``examples/ddp_train.py`` is the lesson: one script that trains on one process
(``python examples/ddp_train.py``) or on N (``torchrun --nproc_per_node=N examples/ddp_train.py``).
Under torchrun it joins the process group (:func:`setup`: gloo on CPU, NCCL on CUDA), wraps the
model in ``DistributedDataParallel``, gives each process its shard of every batch
(:func:`shard_loader`), passes :class:`SyncProcesses` to ``fit`` (a new shuffle each epoch, the
training loss averaged over processes) and lets only rank 0 show progress and plots.

Each global batch of ``B`` examples is split into ``N`` shards of ``B / N``; because DDP averages
gradients, the update equals a single-process step on the whole batch.

Introduced in ``notebooks/09_layers_params_io_devices.ipynb``.
Copy alone.

>>> shards = [list(StridedSampler(10, num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
>>> shards
[[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
"""

from __future__ import annotations

import os
from collections.abc import Sized
from typing import Any, Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler

__all__ = ["launched_with_torchrun", "setup", "rank", "world_size", "is_main_process",
           "StridedSampler", "shard_loader", "all_reduce_sum", "SyncProcesses", "cleanup"]


def launched_with_torchrun() -> bool:
    """True when this process was started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the process group if needed and return this process's device.

    On CUDA each process uses ``cuda:LOCAL_RANK``; on CPU the gloo backend is used.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def _this_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def rank() -> int:
    """This process's number (0 without a process group)."""
    return _this_rank()


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0, the process that prints, plots and saves."""
    return rank() == 0


class StridedSampler(Sampler[int]):
    """Indices ``rank, rank + N, rank + 2N, …`` of a base order (no padding, no duplicates).

    With a shuffled base order the permutation is drawn from a generator seeded with
    ``seed + epoch``, identical on every process, so the shards of one epoch are disjoint.
    """

    def __init__(self, length: int, num_replicas: int, rank: int, shuffle: bool, seed: int = 0,
                 use: int | None = None) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.length, self.num_replicas, self.rank = length, num_replicas, rank
        self.use = length if use is None else use
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle differently (and identically on every process) in the next epoch."""
        self.epoch = epoch

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.length))
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.length, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[:self.use][self.rank::self.num_replicas])

    def __len__(self) -> int:
        return len(range(self.rank, self.use, self.num_replicas))


def shard_loader(loader: Iterable[Any], num_replicas: int | None = None, rank: int | None = None,
                 seed: int = 0) -> DataLoader:
    """Rebuild a DataLoader so that this process sees ``1/num_replicas`` of every batch.

    ``num_replicas`` and ``rank`` default to this run's :func:`world_size` and :func:`rank`.

    Works for DataLoaders over map-style datasets (including ``course_utils`` tensor loaders).
    The global batch size must be divisible by ``num_replicas``. If the last global batch
    would have fewer examples than processes, those few examples are left out of the epoch
    (otherwise some process would have one batch less and the others would wait forever).
    """
    num_replicas = world_size() if num_replicas is None else num_replicas
    rank = _this_rank() if rank is None else rank
    if not isinstance(loader, DataLoader):
        raise TypeError(f"can only shard a torch DataLoader, got {type(loader).__name__}")
    batches = loader.sampler if isinstance(loader.sampler, BatchSampler) else loader.batch_sampler
    if not isinstance(batches, BatchSampler):
        raise TypeError("can only shard a DataLoader that batches with a BatchSampler")
    if batches.batch_size % num_replicas:
        raise ValueError(f"the batch size {batches.batch_size} is not divisible by the "
                         f"{num_replicas} processes")
    shuffle = isinstance(batches.sampler, RandomSampler)
    if not isinstance(loader.dataset, Sized):
        raise TypeError("can only shard a loader over a map-style dataset (one with a length)")
    n = len(loader.dataset)
    tail = n % batches.batch_size
    use = n - tail if (0 < tail < num_replicas or batches.drop_last) else n
    sampler = StridedSampler(n, num_replicas, rank, shuffle, seed, use)
    local = BatchSampler(sampler, batches.batch_size // num_replicas, batches.drop_last)
    if isinstance(loader.sampler, BatchSampler):  # course_utils style: batch_size=None
        return DataLoader(loader.dataset, sampler=local, batch_size=None, collate_fn=loader.collate_fn)
    return DataLoader(loader.dataset, batch_sampler=local, collate_fn=loader.collate_fn)


def all_reduce_sum(values: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Sum each tensor over all processes (a no-op in a single process)."""
    if world_size() == 1:
        return list(values)
    out = []
    for value in values:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        out.append(value)
    return out


class SyncProcesses:
    """The callback a data-parallel run passes to ``training.fit``: before each epoch it gives the
    :class:`StridedSampler` of a :func:`shard_loader` the epoch number (a new shuffle, the same
    on every process); after it, the epoch's ``train_loss`` becomes the mean over all processes."""

    def __init__(self, loader: Any) -> None:
        sampler = getattr(loader, "batch_sampler", None) or getattr(loader, "sampler", None)
        self.sampler = getattr(sampler, "sampler", None)

    def before_epoch(self, run: Any) -> None:
        if isinstance(self.sampler, StridedSampler):
            self.sampler.set_epoch(run.epoch)

    def after_epoch(self, run: Any) -> None:
        total = torch.tensor([run.metrics["train_loss"] * run.count, run.count], dtype=torch.float64)
        loss_sum, count = all_reduce_sum([total])[0].tolist()
        run.metrics["train_loss"] = loss_sum / count


def cleanup() -> None:
    """Wait for every process, then leave the process group (call at the end of a torchrun script).

    Rank 0 usually still prints and saves when the others are done; the barrier makes all of
    them leave together.
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()
        dist.destroy_process_group()
