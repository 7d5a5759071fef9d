"""Embedding a source into resumable shards on disk.

    FOLDER/meta.json           source hash, embedder fingerprint, shard size, stored dtype
    FOLDER/shard-00000.npy     vectors of the items of rows [0, shard_size) that embedded
    FOLDER/shard-00000.json    which rows those are, and which were skipped and why
    FOLDER/all.npy             every shard's vectors joined, memory-mapped by later stages

Vectors are stored as float32, or as float16 (``dtype``) to halve the files and the page cache
they take; readers convert each block they read to float32 (``gmvaluator.search.prepare``).

A shard counts as finished only once its JSON exists (written after the vectors, atomically),
so a run killed at any point resumes from the last finished shard and redoes nothing else.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.embed.base import Embedder
from gmvaluator.embed.cache import EmbeddingCache, item_keys
from gmvaluator.embed.dataset import _embed_batch, embedder_fingerprint
from gmvaluator.embed.registry import check_kind
from gmvaluator.embed.timing import timed
from gmvaluator.errors import InputError
from gmvaluator.files import atomic_path, read_json, save_npy, write_json
from gmvaluator.resources import check_resources
from gmvaluator.skips import current, on_bad_item, skipping
from gmvaluator.sources.base import Dataset

#: How embeddings may be stored on disk.
EMBEDDING_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class ShardedEmbedding:
    vectors: np.ndarray  # (n_kept, dim) float32 or float16, memory-mapped
    kept: np.ndarray  # source rows of those vectors, increasing
    seconds: float  # embedding time spent in this call (0 when every shard was reused)
    reused_shards: int
    n_shards: int


def embed_sharded(
    ds: Dataset, embedder: Embedder, folder: Path, source_meta: dict[str, Any], *,
    shard_size: int = 4096, batch_size: int = 64, metric: str = "cosine", progress: bool = True,
    cache: EmbeddingCache | None = None, dtype: str = "float32",
) -> ShardedEmbedding:  # fmt: skip
    """Embed ``ds`` into ``folder`` shard by shard, reusing shards finished by an earlier run.

    With ``cache`` (``embed.cache``), items embedded by any earlier run are read from it and
    the newly embedded ones are added to it, one cache part per shard. ``dtype`` is how the
    vectors are stored (``EMBEDDING_DTYPES``).
    """
    check_kind(embedder, ds.kind, ds.name)
    meta = shard_meta(source_meta, embedder, shard_size, metric, dtype)
    reset_if_stale(folder, meta)
    n = len(ds)
    starts = list(range(0, n, shard_size))
    parts, kept, reused, seconds = [], [], 0, 0.0
    from gmvaluator.progress import bar as progress_bar

    desc = f"embed {ds.name} ({embedder.name})"
    with progress_bar(n, desc, progress=progress) as bar:
        for number, start in enumerate(starts):
            stop = min(n, start + shard_size)
            done = _load_shard(folder, number)
            if done is None:
                t0 = time.perf_counter()
                done = embed_shard(
                    ds, embedder, start, stop, batch_size, metric, cache, tick=bar.update
                )
                seconds += time.perf_counter() - t0
                with timed("write"):
                    save_shard(folder, number, *done, dtype=dtype)
            else:
                reused += 1
                current().rows.extend((current().source, i, r) for i, r in done[2])
                bar.update(stop - start)
            vecs, rows, _ = done
            if number == 0 and len(vecs):
                check_resources(n, vecs.shape[1], folder, np.dtype(dtype).itemsize)
            parts.append(np.load(shard_paths(folder, number)[0], mmap_mode="r"))
            kept.append(rows)
    return _assemble(ds, folder, parts, kept, seconds, reused, len(starts), dtype)


def shard_meta(
    source_meta: dict[str, Any], embedder: Embedder, shard_size: int, metric: str, dtype: str
) -> dict[str, Any]:
    """What ``meta.json`` records: shards made under any other value are redone."""
    if dtype not in EMBEDDING_DTYPES:
        raise InputError(
            f"embedding dtype must be one of {EMBEDDING_DTYPES}; got {dtype!r}. "
            "Use --embedding-dtype float32 or float16."
        )
    meta = {**source_meta, "embedder": embedder_fingerprint(embedder), "shard_size": shard_size}
    meta["metric"] = metric  # zero vectors are skipped only under cosine
    # Shards made under --on-error skip may lack items; a run that must stop on them redoes them.
    meta["on_error"] = "skip" if skipping() else "raise"
    meta["dtype"] = dtype
    return meta


def _assemble(
    ds, folder, parts, kept, seconds, reused, n_shards, dtype="float32"
) -> ShardedEmbedding:  # type: ignore[no-untyped-def]
    rows = np.concatenate(kept).astype(np.int64)
    if len(rows) == 0:
        raise InputError(
            f"every item of source {ds.name!r} was skipped; nothing is left to value. See "
            "skipped.csv for why, and fix the inputs."
        )
    dims = {p.shape[1] for p in parts if len(p)}
    if len(dims) > 1:
        raise InputError(
            f"the stored embedding shards of {ds.name!r} have different dimensions {sorted(dims)}. "
            "Delete the run's embeddings folder and re-run."
        )
    vectors = _join_on_disk([p for p in parts if len(p)], folder / "all.npy", dtype)
    return ShardedEmbedding(vectors, rows, seconds, reused, n_shards)


def _join_on_disk(parts: list[np.ndarray], path: Path, dtype: str = "float32") -> np.ndarray:
    """The shards as one memory-mapped (n, dim) array, copied shard by shard, never whole."""
    n, dim = sum(len(p) for p in parts), parts[0].shape[1]
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(n, dim))
        at = 0
        for p in parts:
            out[at : at + len(p)] = p
            at += len(p)
        out.flush()
        del out
    return np.load(path, mmap_mode="r", allow_pickle=False)


def embed_shard(
    ds: Dataset, embedder: Embedder, start: int, stop: int, batch_size: int, metric: str,
    cache: EmbeddingCache | None = None, tick: Callable[[int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:  # fmt: skip
    """Rows [start, stop) of ``ds``: (vectors, the rows that embedded, (id, reason) skipped).
    ``tick(n)`` is called as each batch of n rows is done (a progress bar's ``update``)."""
    tick = tick or _no_tick
    before = len(current().rows)
    vecs: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    if cache is not None:
        vecs, rows = _embed_cached(ds, embedder, start, stop, batch_size, metric, cache, tick)
    else:
        for lo in range(start, stop, batch_size):
            v, r = embed_rows(ds, embedder, lo, min(stop, lo + batch_size), metric)
            vecs.append(v)
            rows.append(r)
            tick(min(stop, lo + batch_size) - lo)
    skipped = [(i, reason) for _, i, reason in current().rows[before:]]
    nonempty = [v for v in vecs if len(v)]
    dim = nonempty[0].shape[1] if nonempty else 0
    out = np.concatenate(nonempty) if nonempty else np.empty((0, dim), np.float32)
    kept = np.concatenate(rows).astype(np.int64) if rows else np.empty(0, np.int64)
    return out, kept, skipped


def _embed_cached(
    ds: Dataset, embedder: Embedder, start: int, stop: int, batch_size: int, metric: str,
    cache: EmbeddingCache, tick: Callable[[int], Any],
) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """Rows [start, stop): cached vectors where the cache has them, the rest embedded and added
    to the cache. Returns the parts in row order."""
    every = np.arange(start, stop)
    keys = item_keys(ds, every)
    found, hit_vecs = cache.get(keys)
    tick(int(found.sum()))
    vecs, rows = [], []
    if hit_vecs is not None:
        hit_rows = every[found]
        if metric == "cosine":
            hit_vecs, hit_rows = _drop_zero_rows(ds, hit_vecs, hit_rows)
        vecs.append(hit_vecs)
        rows.append(hit_rows)
    miss = every[~found]
    if len(miss):
        sub = ds.take(miss)
        new_vecs, new_rows = [], []
        for lo in range(0, len(miss), batch_size):
            v, r = embed_rows(sub, embedder, lo, min(len(miss), lo + batch_size), metric)
            tick(min(len(miss), lo + batch_size) - lo)
            if len(r):
                new_vecs.append(v)
                new_rows.append(r)
        if new_rows:
            v, r = np.concatenate(new_vecs), np.concatenate(new_rows)
            with timed("write"):
                cache.put(keys[~found][r], v)
            vecs.append(v)
            rows.append(miss[r])
    if len(rows) > 1:
        all_rows = np.concatenate(rows)
        order = np.argsort(all_rows, kind="stable")
        return [np.concatenate(vecs)[order]], [all_rows[order]]
    return vecs, rows


def _no_tick(n: int) -> None:
    return None


def embed_rows(
    ds: Dataset, embedder: Embedder, start: int, stop: int, metric: str = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of rows [start, stop) and which rows they are; bad items raise or are skipped."""
    try:
        vecs = _embed_batch(ds, embedder, start, stop)
        rows = np.arange(start, stop)
    except InputError:
        if not skipping():
            raise
        # Find the bad items one by one (a batch of one included: it is recorded, not raised);
        # the good ones are embedded again alone.
        good = [_one(ds, embedder, i) for i in range(start, stop)]
        pairs = [(v, i) for v, i in zip(good, range(start, stop), strict=True) if v is not None]
        if not pairs:
            return np.empty((0, 0), np.float32), np.empty(0, np.int64)
        vecs = np.concatenate([v for v, _ in pairs])
        rows = np.array([i for _, i in pairs])
    if metric == "cosine":
        vecs, rows = _drop_zero_rows(ds, vecs, rows)
    return vecs, rows


def _one(ds: Dataset, embedder: Embedder, i: int) -> np.ndarray | None:
    try:
        return _embed_batch(ds, embedder, i, i + 1)
    except InputError as exc:
        on_bad_item(ds.ids[i], exc)
        return None


def _drop_zero_rows(
    ds: Dataset, vecs: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    zero = ~np.any(vecs != 0, axis=1)
    for j in np.flatnonzero(zero):
        on_bad_item(
            ds.ids[rows[j]],
            InputError(
                f"item {str(ds.ids[rows[j]])!r} of source {ds.name!r} embeds to the zero vector, "
                "which has no cosine direction. Drop it or use --metric sqeuclidean."
            ),
        )
    return vecs[~zero], rows[~zero]


def reset_if_stale(folder: Path, meta: dict[str, Any]) -> None:
    """Shards of another source or embedder are useless here: remove them, record the new."""
    path = folder / "meta.json"
    if path.is_file() and read_json(path) == meta:
        return
    if folder.exists():
        shutil.rmtree(folder)
    write_json(path, meta)


def shard_paths(folder: Path, number: int) -> tuple[Path, Path]:
    """The vectors and the JSON of shard ``number``; it is finished once both exist."""
    return folder / f"shard-{number:05d}.npy", folder / f"shard-{number:05d}.json"


def _load_shard(folder: Path, number: int):  # type: ignore[no-untyped-def]
    npy, js = shard_paths(folder, number)
    if not (npy.is_file() and js.is_file()):
        return None
    info = read_json(js)
    vecs = np.load(npy, allow_pickle=False)
    rows = np.asarray(info["kept"], dtype=np.int64)
    if len(vecs) != len(rows):
        return None
    return vecs, rows, [tuple(x) for x in info["skipped"]]


def save_shard(folder: Path, number: int, vecs, rows, skipped, dtype: str = "float32") -> None:  # type: ignore[no-untyped-def]
    """Write shard ``number`` (what ``embed_shard`` returned); its JSON last, so that it counts
    only once complete."""
    npy, js = shard_paths(folder, number)
    if dtype == "float16":
        _check_float16_range(vecs, folder, number)
    save_npy(npy, np.ascontiguousarray(vecs, dtype=np.dtype(dtype)))
    write_json(js, {"kept": rows.tolist(), "skipped": [list(x) for x in skipped]})


def _check_float16_range(vecs: np.ndarray, folder: Path, number: int) -> None:
    # float16 holds magnitudes up to 65504; larger ones would be stored as inf
    big = np.abs(vecs) > np.finfo(np.float16).max
    if big.any():
        raise InputError(
            f"shard {number} of {folder} has embedding values up to {float(np.abs(vecs).max()):g}, "
            "beyond float16's range (65504). Use --embedding-dtype float32."
        )
