"""Reading ahead: the next batch is decoded and preprocessed while the model runs on this one.

Embedding loops ask for consecutive row ranges of one dataset ([0, 64), [64, 128), ...). After
handing out a batch, ``take_batch`` starts loading the range that follows it, of the loop's
batch size, in a background thread (one per calling thread), and the next call collects it if
it asked for that range; any other request waits for it, drops it and loads its own range in
the foreground.

Only embedders that declare ``read_ahead = True`` are read ahead: those whose forward pass
releases the GIL for the whole batch (onnxruntime's ``run``), so that on two cores the
preparation of batch i + 1 (PIL decoding and resizing, which release it too) costs no wall
time next to the forward pass of batch i. A torch model runs many small operations and takes
the GIL back between them; a thread preparing the next batch beside it made EfficientNet-Lite0
about 10-25 % slower here, so those run without.

An embedder that splits its work into ``prepare_batch(items)`` (pure preprocessing, no state
changed) and ``embed_prepared(batch)`` has its preprocessing read ahead too; any other embedder
only has its items loaded ahead. The prepared batch is what the foreground would have computed,
so vectors and their order are the same as without reading ahead. A failure in the background
is not reported there: the foreground loads that range again and raises as it always would.
Between two batches the caller must not read the dataset's items itself; a loop that stops
early calls ``drain()``.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gmvaluator.embed.base import Embedder
from gmvaluator.embed.timing import timed
from gmvaluator.sources.base import Dataset


@dataclass
class _Pending:
    ds: Dataset
    embedder: Embedder
    start: int
    stop: int
    size: int  # the loop's batch size
    future: Future[tuple[Any, Any]]


class _State(threading.local):
    pending: _Pending | None = None
    pool: ThreadPoolExecutor | None = None


_state = _State()


def take_batch(ds: Dataset, embedder: Embedder, start: int, stop: int) -> tuple[Any, Any]:
    """(items of rows [start, stop), their prepared batch or None); then starts reading the
    next range of the same size ahead."""
    same_loop = _state.pending is not None and _state.pending.ds is ds
    size = max(stop - start, _state.pending.size if _state.pending and same_loop else 0)
    loaded = _collect(ds, embedder, start, stop)
    if loaded is None:
        loaded = load(ds, embedder, start, stop)
    n = len(ds)
    if stop < n and getattr(embedder, "read_ahead", False):
        # a short batch (the end of a shard) is followed by a full one
        nxt = (stop, min(n, stop + size))
        if _state.pool is None:
            _state.pool = ThreadPoolExecutor(1, thread_name_prefix="gmvaluator-read-ahead")
        future = _state.pool.submit(load, ds, embedder, *nxt)
        _state.pending = _Pending(ds, embedder, nxt[0], nxt[1], size, future)
    return loaded


def drain() -> None:
    """Wait for the batch being read ahead and drop it. Called when an embedding loop stops
    early, so that no background read of its dataset outlives it."""
    _collect(None, None, -1, -1)


def _collect(ds: Any, embedder: Any, start: int, stop: int) -> tuple[Any, Any] | None:
    """The batch read ahead if it is rows [start, stop) of ``ds`` for ``embedder``, else None.
    Waits for it either way: two threads never read one dataset at once (a lazy source keeps
    one decoded row group, which is not safe to share between threads)."""
    pending, _state.pending = _state.pending, None
    if pending is None:
        return None
    try:
        with timed("wait"):
            loaded = pending.future.result()
    except Exception:
        return None  # loaded again in the foreground, so that the error is raised there
    hit = pending.ds is ds and pending.embedder is embedder
    return loaded if hit and (pending.start, pending.stop) == (start, stop) else None


def load(ds: Dataset, embedder: Embedder, start: int, stop: int) -> tuple[Any, Any]:
    """The items of rows [start, stop), and the embedder's prepared batch when it has one.

    Texts that are not all strings are left unprepared: the caller names the bad item."""
    with timed("load"):
        items = _take(ds, embedder, start, stop)
    prepare = getattr(embedder, "prepare_batch", None)
    if prepare is None or not hasattr(embedder, "embed_prepared"):
        return items, None
    if ds.kind == "text" and not all(isinstance(t, str) for t in items):
        return items, None
    with timed("preprocess"):
        return items, prepare(items)


def _take(ds: Dataset, embedder: Embedder, start: int, stop: int) -> Any:
    array = getattr(ds.items, "array", None)
    if ds.kind == "image" and array is not None and getattr(embedder, "accepts_arrays", False):
        return array[start:stop]  # skips decoding each row to a PIL image
    return ds.items[start:stop]  # type: ignore[index]
