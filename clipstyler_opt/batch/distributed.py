"""Running one batch as several processes under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set).

The default process group uses nccl when the ranks run on CUDA and gloo otherwise; Python
objects (the job list, the records) always travel over a gloo group, because they are CPU
objects and because ranks may wait a long time for each other: one rank can finish its
shard hours before the slowest one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch

from clipstyler_opt.core.errors import ConfigError

__all__ = ["Distributed", "launched_by_torchrun"]

T = TypeVar("T")
# Long enough for an overnight run's fastest rank to wait for its slowest; torchrun itself
# stops every rank at once if one of them dies, so nothing hangs for this long.
COLLECTIVE_TIMEOUT = timedelta(days=7)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    _objects_group: Any = None
    _owns_group: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: str) -> Distributed:
        """Join the torchrun group when launched by torchrun; a single process otherwise."""
        if not launched_by_torchrun():
            return cls()
        import torch.distributed as dist

        if not dist.is_available():
            raise ConfigError("launched by torchrun, but this torch build has no torch.distributed")
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        on_cuda = rank_device(device, local_rank).startswith("cuda")
        if on_cuda:
            torch.cuda.set_device(local_rank)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("nccl" if on_cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
        backend = str(dist.get_backend())
        group = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT) if backend != "gloo" else None
        return cls(rank, world, local_rank, backend, group, owns)

    def device(self, requested: str) -> str:
        return rank_device(requested, self.local_rank) if self.active else requested

    def broadcast(self, value: T) -> T:
        """Rank 0's `value`, on every rank."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self._objects_group)
        return box[0]  # type: ignore[return-value]

    def gather(self, value: T) -> list[T] | None:
        """Every rank's `value` on rank 0 (in rank order); None on the other ranks."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, gathered, dst=0, group=self._objects_group)
        return gathered

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier(group=self._objects_group)

    def close(self) -> None:
        if self.active and self._owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._owns_group = False


def rank_device(requested: str, local_rank: int) -> str:
    """Each rank's device: `cuda:LOCAL_RANK` when CUDA is present, else the CPU. An explicit
    `--device cpu` is kept."""
    if requested.strip().lower() == "cpu":
        return "cpu"
    return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
