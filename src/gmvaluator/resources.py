"""A clear error before starting when the disk or memory a run needs is clearly not there."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil

from gmvaluator import env
from gmvaluator.errors import InputError

#: Bytes per embedding value of the index's own copy on disk (float32), beside the shards.
INDEX_BYTES = 4
#: Bytes per embedding value that must fit in memory: an exact index's float32 copy, the most
#: an index holds. The embeddings themselves are memory-mapped: the system pages them in and
#: out, so they need no room of their own (1,000,000 x 512 float32 valued with an IVF-PQ index
#: peaked at 904 MiB of anonymous memory, bench/results/scale_goal.json).
MEMORY_FACTOR = 4


def available_memory() -> int:
    """Memory available to a new process without swapping, in bytes (Linux: MemAvailable)."""
    return int(psutil.virtual_memory().available)


def check_resources(n: int, dim: int, folder: Path, itemsize: int = 4) -> None:
    """Raise when n x dim embeddings stored with ``itemsize`` bytes a value clearly cannot fit
    on the disk under ``folder``, or their index in memory."""
    values = n * dim
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    need = values * (itemsize + INDEX_BYTES)
    if need > free:
        raise InputError(
            f"valuing {n:,} items of dimension {dim} needs about {_gb(need)} on disk under "
            f"{folder}, but only {_gb(free)} is free. Free space or choose another --out."
        )
    need_mem = values * MEMORY_FACTOR
    mem = env.MEMORY_BYTES.integer()
    if mem is None:
        mem = available_memory()
    if need_mem > mem:
        raise InputError(
            f"valuing {n:,} items of dimension {dim} needs about {_gb(need_mem)} of memory, but "
            f"only {_gb(mem)} is available. Use a machine with more memory or fewer items."
        )


def _gb(b: int) -> str:
    return f"{b / 1e9:.2f} GB"
