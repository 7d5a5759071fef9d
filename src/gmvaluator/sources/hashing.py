"""Content hash of a source: the key that embedding caches and the ledger record."""

from __future__ import annotations

import hashlib

import numpy as np

from gmvaluator.sources.base import Dataset, ImageItems

# Rows hashed at a time, so that a memory-mapped array is never copied whole.
_BLOCK = 1 << 14


def content_hash(ds: Dataset) -> str:
    """SHA-256 over the kind, the ids and the items, in order.

    Labels, contributors and ``extra`` are left out on purpose: they do not change what an
    embedder sees, so relabelling a source keeps its cached embeddings valid. Every string and
    image is length-prefixed so that moving bytes between neighbours changes the hash.
    """
    h = hashlib.sha256()
    h.update(f"gmvaluator-source-v1\0{ds.kind}\0{len(ds)}\0".encode())
    for s in ds.ids:
        _update_prefixed(h, str(s).encode("utf-8", "surrogatepass"))
    if ds.kind == "embedding":
        _update_array(h, np.asarray(ds.items))
    elif ds.kind == "text":
        for s in ds.items:  # type: ignore[attr-defined]
            _update_prefixed(h, s.encode("utf-8", "surrogatepass"))
    else:
        items = ds.items
        if not isinstance(items, ImageItems):
            raise TypeError(f"image source {ds.name!r} must hold ImageItems, not {type(items)}")
        if items.array is not None:
            _update_array(h, items.array)
        else:
            for i in range(len(items)):
                _update_prefixed(h, items.raw_bytes(i))
    return h.hexdigest()


def _update_prefixed(h: hashlib._Hash, data: bytes) -> None:
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def _update_array(h: hashlib._Hash, array: np.ndarray) -> None:
    h.update(f"{array.dtype.str}{array.shape}\0".encode())
    for start in range(0, array.shape[0], _BLOCK):
        h.update(np.ascontiguousarray(array[start : start + _BLOCK]).tobytes())
