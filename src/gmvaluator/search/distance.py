"""Vectors at the boundary of the search and the distances between them.

``prepare`` checks embeddings and turns them into the float32 vectors every index and every
distance here works on (L2-normalised for ``cosine``). The distances are those of the value
formula: ``cosine`` 1 - cos(q, x) in [0, 2], ``sqeuclidean`` the squared L2 distance; the
re-rank computes them in float64 from the stored vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gmvaluator.errors import InputError
from gmvaluator.files import atomic_path

#: Rows checked and normalised at a time.
_PREPARE_BLOCK = 1 << 14
#: Rows of (queries x candidates x dim) gathered at once for float64 distances.
_GATHER_BLOCK = 1 << 22


def prepare(
    x: np.ndarray, metric: str, what: str = "embeddings", out: Path | None = None
) -> np.ndarray:
    """Check embeddings at the boundary and return float32 C-contiguous vectors to index.

    For ``cosine`` the rows are L2-normalised; a zero row has no direction and is refused.
    Rows are processed in blocks, so a memory-mapped input is never loaded whole; with ``out``
    the result is written to that ``.npy`` file and returned memory-mapped.
    """
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(
            f"{what} must be a 2-D array (items, dimensions); got shape {x.shape}. "
            "Reshape them or pass images through an embedder."
        )
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{what} must be numeric; got dtype {x.dtype}.")
    if out is None:
        dest = np.empty(x.shape, dtype=np.float32)
        _prepare_into(x, dest, metric, what)
        return dest
    with atomic_path(out) as tmp:
        dest = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=x.shape)
        _prepare_into(x, dest, metric, what)
        dest.flush()
        del dest
    return np.load(out, mmap_mode="r", allow_pickle=False)


def _prepare_into(x: np.ndarray, dest: np.ndarray, metric: str, what: str) -> None:
    for start in range(0, len(x), _PREPARE_BLOCK):
        with np.errstate(over="ignore"):
            block = np.asarray(x[start : start + _PREPARE_BLOCK], dtype=np.float32)
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            raise InputError(
                f"{what} row {start + int(np.flatnonzero(bad)[0])} has NaN or infinite values "
                f"({int(bad.sum())} such rows in its block). Fix or drop those items."
            )
        if metric == "cosine":
            # float64 accumulation without a float64 copy of the block
            norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
            zero = norms == 0
            if zero.any():
                raise InputError(
                    f"{what} row {start + int(np.flatnonzero(zero)[0])} is all zeros, which has "
                    "no cosine direction. Drop such items or use metric='sqeuclidean'.",
                    param="metric",
                )
            block = (block / norms[:, None]).astype(np.float32)
        dest[start : start + len(block)] = block


def pairwise_distance(q: np.ndarray, vecs: np.ndarray, metric: str) -> np.ndarray:
    """Distances of q (b, d) to vecs (b, c, d) by ``metric``, on prepared vectors."""
    if metric == "cosine":
        return np.clip(1.0 - np.einsum("bd,bcd->bc", q, vecs), 0.0, 2.0)
    diff = vecs - q[:, None, :]
    return np.einsum("bcd,bcd->bc", diff, diff)


def candidate_distances(x: np.ndarray, q: np.ndarray, cand: np.ndarray, metric: str) -> np.ndarray:
    """(m, K') float64 distances of each query to its candidate rows; inf where cand is -1."""
    m, kp = cand.shape
    out = np.empty((m, kp), dtype=np.float64)
    step = max(1, _GATHER_BLOCK // max(1, kp * x.shape[1]))
    for s in range(0, m, step):
        c = cand[s : s + step]
        valid = c >= 0
        vecs = _gather(x, np.where(valid, c, 0)).astype(np.float64)
        dist = pairwise_distance(q[s : s + step].astype(np.float64), vecs, metric)
        out[s : s + step] = np.where(valid, dist, np.inf)
    return out


def _gather(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    # One fancy-indexing copy: reading unique rows in sorted order and then expanding them
    # (a second copy) was 2.7x slower here, with x memory-mapped and in the page cache.
    return np.asarray(x[rows.ravel()]).reshape(*rows.shape, x.shape[1])


def float32_distances(x: np.ndarray, q: np.ndarray, cand: np.ndarray, metric: str) -> np.ndarray:
    """(m, K') float32 distances up to a per-query constant: 1 - q.x, or |x - q|^2.

    faiss computes them straight from the rows of x (no gathered copy), several times cheaper
    than ``candidate_distances``; good enough to cut a long candidate list, not to rank it.
    """
    import faiss

    m, kp = cand.shape
    xs = (
        x if x.dtype == np.float32 and x.flags.c_contiguous else np.ascontiguousarray(x, np.float32)
    )
    qs = np.ascontiguousarray(q, dtype=np.float32)
    ids = np.ascontiguousarray(cand, dtype=np.int64)
    out = np.empty((m, kp), dtype=np.float32)
    # faiss's type stubs leave out these two utilities
    name = "fvec_inner_products_by_idx" if metric == "cosine" else "fvec_L2sqr_by_idx"
    by_idx = getattr(faiss, name)
    ptr = faiss.swig_ptr
    by_idx(ptr(out), ptr(qs), ptr(xs), ptr(ids), x.shape[1], m, kp)
    return 1.0 - out if metric == "cosine" else out
