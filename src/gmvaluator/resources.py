"""What the machine gives a run: the cores it may use (``thread_count``), and a clear error
before starting when the disk or memory it needs is clearly not there."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup (v2) CPU quota
    (a container limited to 1.5 CPUs gets 2 threads)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota(Path("/sys/fs/cgroup/cpu.max"))
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_quota(path: Path) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` file ("QUOTA PERIOD" or "max PERIOD")."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max" or float(period) <= 0:
        return None
    return float(quota) / float(period)


def thread_count(threads: int | None = None) -> int:
    """The threads a run computes on: ``threads`` when given, else ``OMP_NUM_THREADS`` when
    set, else every usable core (``usable_cores``). The one place that decides it."""
    from gmvaluator.errors import check_param

    if threads is not None:
        ok = isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1
        check_param("ValueConfig", "threads", threads, ok, "None or an int in the range [1, inf)")
        return threads
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) >= 1:
        return int(given)
    return usable_cores()


@contextmanager
def use_threads(threads: int) -> Iterator[int]:
    """Run faiss (OpenMP), BLAS and torch, when loaded, on ``threads`` threads inside the
    block; the former counts come back after it. ONNX Runtime sessions take the count when
    they are made (``embed.onnx.session``)."""
    import sys

    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield threads
        finally:
            if torch is not None and before is not None:
                torch.set_num_threads(before)


def _gb(b: int) -> str:
    return f"{b / 1e9:.2f} GB"
