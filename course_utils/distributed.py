"""Multi-process data-parallel plumbing for ``torchrun`` (DistributedDataParallel).

Launch any training script unchanged with ``torchrun --nproc_per_node=N script.py``:
:func:`course_utils.training.train_classifier` notices the ``WORLD_SIZE`` that torchrun sets,
joins the process group (gloo on CPU, NCCL on CUDA), wraps the model in
``DistributedDataParallel``, gives each process its own shard of every batch, sums the metrics
over processes, and lets only rank 0 print, plot and save.

Each global batch of ``B`` examples is split into ``N`` shards of ``B / N``; because DDP averages
gradients, the update equals a single-process step on the whole batch. Torch only, so this
module can be copied alone.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler

__all__ = ["launched_with_torchrun", "setup", "rank", "world_size", "is_main_process",
           "StridedSampler", "shard_loader", "all_reduce_sum", "cleanup"]


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


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
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


def shard_loader(loader: Iterable[Any], num_replicas: int, rank: int, seed: int = 0) -> DataLoader:
    """Rebuild a DataLoader so that this process sees ``1/num_replicas`` of every batch.

    Works for DataLoaders over map-style datasets (including ``course_utils`` tensor loaders).
    The global batch size must be divisible by ``num_replicas``. If the last global batch
    would have fewer examples than processes, those few examples are left out of the epoch
    (otherwise some process would have one batch less and the others would wait forever).
    """
    if not isinstance(loader, DataLoader):
        raise TypeError(f"can only shard a torch DataLoader, got {type(loader).__name__}")
    batches = loader.sampler if isinstance(loader.sampler, BatchSampler) else loader.batch_sampler
    if not isinstance(batches, BatchSampler):
        raise TypeError("can only shard a DataLoader that batches with a BatchSampler")
    if batches.batch_size % num_replicas:
        raise ValueError(f"the batch size {batches.batch_size} is not divisible by the "
                         f"{num_replicas} processes")
    shuffle = isinstance(batches.sampler, RandomSampler)
    n = len(loader.dataset)  # type: ignore[arg-type]
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


def cleanup() -> None:
    """Leave the process group (call at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
