"""A clear error before starting when the disk or memory a run needs is clearly not there."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gmvaluator.errors import InputError

#: Bytes per embedding value kept on disk: the shards plus the index's own copy (float32 each).
DISK_FACTOR = 2 * 4
#: Bytes per embedding value held in memory at once: the vectors, the index copy and slack.
MEMORY_FACTOR = 3 * 4


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where the system does not say)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_resources(n: int, dim: int, folder: Path) -> None:
    """Raise when n x dim embeddings clearly cannot fit on the disk under ``folder`` or in RAM."""
    values = n * dim
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    need = values * DISK_FACTOR
    if need > free:
        raise InputError(
            f"valuing {n:,} items of dimension {dim} needs about {_gb(need)} on disk under "
            f"{folder}, but only {_gb(free)} is free. Free space or choose another --out."
        )
    mem, need_mem = available_memory(), values * MEMORY_FACTOR
    if os.environ.get("GMVALUATOR_MEMORY_BYTES"):
        mem = int(os.environ["GMVALUATOR_MEMORY_BYTES"])
    if mem is not None and need_mem > mem:
        raise InputError(
            f"valuing {n:,} items of dimension {dim} needs about {_gb(need_mem)} of memory, but "
            f"only {_gb(mem)} is available. Use a machine with more memory or fewer items."
        )


def _gb(b: int) -> str:
    return f"{b / 1e9:.2f} GB"
