"""``ShardedSampler``: every sample exactly once per epoch across ``world`` ranks (no padding, no repeats).

``torch.utils.data.DistributedSampler`` pads the index list with repeats to make the shards equal; here the
shards may differ by one sample and the training loop copes with uneven inputs (DDP ``join``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class ShardedSampler:
    """Indices ``0..n-1``, shuffled with ``seed + epoch``, rank ``r`` taking positions ``r, r+world, ...``."""

    def __init__(self, n: int, rank: int = 0, world: int = 1, shuffle: bool = True, seed: int = 0) -> None:
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"bad rank {rank} of world {world}")
        self.n, self.rank, self.world, self.shuffle, self.seed = n, rank, world, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return max(0, (self.n - self.rank + self.world - 1) // self.world)

    def batches(self, batch_size: int) -> list[list[int]]:
        idx = self.indices()
        return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
