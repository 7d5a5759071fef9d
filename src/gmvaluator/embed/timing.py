"""Where embedding time goes: seconds spent per stage, summed over batches and threads.

    load        reading the items of a batch (an image file is decoded when first used)
    preprocess  decoding, resizing and normalising them (``prepare_batch``)
    model       the forward pass (``embed_prepared``; ``embed_batch``, preprocessing included,
                for embedders that do not split the two)
    wait        the loop waiting for a batch being read ahead
    write       writing shards and cache parts

Batches read ahead are loaded and preprocessed in a background thread while the model runs,
so the stages add up to more than the wall time; ``model`` close to the wall time means the
model, not the input, sets the pace. Nothing is recorded outside ``collect_times()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES = ("load", "preprocess", "model", "wait", "write")


class StageTimes:
    """Seconds per stage (``STAGES``), added to from any thread."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds

    def record(self, prefix: str = "embed_") -> dict[str, float]:
        """The seconds as ``run.json`` timings: ``{prefix}{stage}_s``."""
        return {f"{prefix}{stage}_s": round(s, 4) for stage, s in self.seconds.items()}


_current: list[StageTimes] = []


@contextmanager
def collect_times() -> Iterator[StageTimes]:
    """Record the stage times of the embedding done inside the block."""
    times = StageTimes()
    _current.append(times)
    try:
        yield times
    finally:
        _current.remove(times)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Add the time spent in the block to ``stage`` of the times being collected, if any."""
    if not _current:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _current[-1].add(stage, time.perf_counter() - t0)
