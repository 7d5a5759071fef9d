"""Embedding a whole Dataset in batches, and the fingerprint that identifies an embedding."""

from __future__ import annotations

from typing import Any

import numpy as np

from gmvaluator.embed.base import Embedder
from gmvaluator.embed.readahead import drain, take_batch
from gmvaluator.embed.registry import check_kind
from gmvaluator.embed.timing import timed
from gmvaluator.errors import InputError, check_param
from gmvaluator.sources.base import Dataset


def embed_dataset(
    ds: Dataset, embedder: Embedder, *, batch_size: int = 64, progress: bool = True
) -> np.ndarray:
    """Embed every item of ``ds``; returns a C-contiguous float32 (N, dim) array in ``ds`` order.

    A progress bar goes to stderr unless ``progress`` is False. A non-finite vector raises
    InputError naming the item, since one NaN would silently poison every distance to it.
    """
    ok = isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1
    check_param("embed_dataset", "batch_size", batch_size, ok, "an int in the range [1, inf)")
    check_kind(embedder, ds.kind, ds.name)
    from gmvaluator.progress import bar as progress_bar

    n = len(ds)
    out: np.ndarray | None = None
    desc = f"embed {ds.name} ({embedder.name})"
    with progress_bar(n, desc, progress=progress) as bar:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            vecs = _embed_batch(ds, embedder, start, stop)
            if out is None:
                out = np.empty((n, vecs.shape[1]), dtype=np.float32)
            _check_dim(ds, embedder, vecs, out.shape[1], start)
            out[start:stop] = vecs
            bar.update(stop - start)
    assert out is not None  # a Dataset is never empty
    return out


def embedder_fingerprint(embedder: Embedder) -> dict[str, Any]:
    """What identifies an embedding exactly; saved next to embeddings and compared on resume."""
    return {
        "name": embedder.name,
        "version": embedder.version,
        "settings": dict(embedder.settings()),
    }


def _embed_batch(ds: Dataset, embedder: Embedder, start: int, stop: int) -> np.ndarray:
    try:
        return _embed_taken(ds, embedder, start, stop)
    except BaseException:
        drain()  # the caller may stop here: no background read of ds may outlive this call
        raise


def _embed_taken(ds: Dataset, embedder: Embedder, start: int, stop: int) -> np.ndarray:
    # embedders that ask for it have their next batch prepared meanwhile: see readahead
    batch, prepared = take_batch(ds, embedder, start, stop)
    if ds.kind == "text":
        for k, text in enumerate(batch):
            if not isinstance(text, str):
                raise InputError(
                    f"item {_item_id(ds, start + k)!r} of source {ds.name!r} is a "
                    f"{type(text).__name__}, not text. Make every item a string."
                )
    with timed("model"):
        if prepared is None:
            vecs = np.asarray(embedder.embed_batch(batch))
        else:
            vecs = np.asarray(embedder.embed_prepared(prepared))  # type: ignore[attr-defined]
    if vecs.ndim != 2 or vecs.shape[0] != stop - start or vecs.shape[1] == 0:
        raise InputError(
            f"embedder {embedder.name!r} returned shape {vecs.shape} for a batch of "
            f"{stop - start} items of source {ds.name!r}; embed_batch must return (B, dim)."
        )
    vecs = vecs.astype(np.float32, copy=False)
    bad = np.flatnonzero(~np.isfinite(vecs).all(axis=1))
    if bad.size:
        raise InputError(
            f"item {_item_id(ds, start + int(bad[0]))!r} of source {ds.name!r} gives "
            f"non-finite values (NaN or inf) with embedder {embedder.name!r} ({bad.size} such "
            "item(s) in its batch). Remove the item or fix its data."
        )
    return vecs


def _check_dim(ds: Dataset, embedder: Embedder, vecs: np.ndarray, dim: int, start: int) -> None:
    if vecs.shape[1] != dim:
        raise InputError(
            f"embedder {embedder.name!r} returned {vecs.shape[1]}-d vectors from item "
            f"{_item_id(ds, start)!r} of source {ds.name!r} on, but {dim}-d before. "
            "An embedder must give one dimension for all items."
        )


def _item_id(ds: Dataset, i: int) -> Any:
    v = ds.ids[i]
    return v.item() if isinstance(v, np.generic) else v
