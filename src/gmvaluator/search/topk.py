"""Top-k search: recall candidates from an index, re-rank them exactly, measure the recall.

Every kind of index answers the same question, the top-k training rows of each query by the
run's metric, in two steps: recall K' candidates from the faiss index (exact or Product
Quantization), then re-rank those candidates with the exact distance computed in float64 from
the stored vectors. Ties are broken by training-row order, so results are deterministic.

``search_block`` is that search for one block of queries against one index, or one shard of
it: the local ``search`` runs it batch by batch and each Ray shard runs it on its own rows, so
both search, re-rank and fall back to exact search the same way. Search, re-rank and exact
search work in bounded blocks, so the stored vectors may be memory-mapped and memory grows with
the index and one batch, not with n x d.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gmvaluator.errors import InputError
from gmvaluator.progress import bar
from gmvaluator.search.distance import candidate_distances, float32_distances
from gmvaluator.search.params import IndexParams

#: Candidates kept beyond k, by float32 scores, so that float32 near-ties resolve in float64.
_RERANK_MARGIN = 8
#: Queries searched at once: bounds the (queries x K') candidate lists held in memory.
_SEARCH_BATCH = 1 << 14
#: Training rows scored at once by ``exact_search``: bounds its (queries x rows) score block.
_EXACT_BLOCK = 1 << 15


def top_k(dist: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest distances of each row; equal distances keep the lower training row.

    Missing candidates (row -1) sort last, with distance inf.
    """
    valid = cand >= 0
    dist = np.where(valid, dist, np.inf)
    key_i = np.where(valid, cand, np.iinfo(np.int64).max)
    order = np.lexsort((key_i, dist), axis=-1)[:, :k]
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(cand, order, axis=1)


def check_complete(distances: np.ndarray, k: int, what: str = "queries") -> None:
    """Refuse top-k lists padded with missing matches (inf): the index found fewer than k."""
    if not np.isfinite(distances).all():
        raise InputError(
            f"the index returned fewer than k={k} candidates for some {what}. Lower k, raise "
            "n_candidates or nprobe, or use index='exact'.",
            param=("k", "n_candidates", "nprobe", "index"),
        )


def shortlist(x: np.ndarray, q: np.ndarray, cand: np.ndarray, keep: int, metric: str) -> np.ndarray:
    """The ``keep`` best candidates of each query by float32 distance (ties: lower row first).

    The float32 distances are several times cheaper than the float64 ones, which are then
    computed for the shortlist only; a margin beyond k lets float32 near-ties resolve there.
    """
    valid = cand >= 0
    dist = float32_distances(x, q, cand, metric)
    key_i = np.where(valid, cand, np.iinfo(np.int64).max)
    order = np.lexsort((key_i, np.where(valid, dist, np.inf)), axis=-1)[:, :keep]
    return np.take_along_axis(cand, order, axis=1)


def rerank(
    x: np.ndarray, q: np.ndarray, cand: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 distances of each query to its candidates; keep the k best per row.

    Missing candidates (faiss returns -1) sort last. Equal distances keep the lower row first.
    Long candidate lists are first cut to their best k + 8 by float32 scores (``shortlist``).
    """
    cand = np.asarray(cand, dtype=np.int64)
    if cand.shape[1] > k + _RERANK_MARGIN:
        cand = shortlist(x, q, cand, k + _RERANK_MARGIN, metric)
    out_d, out_i = top_k(candidate_distances(x, q, cand, metric), cand, k)
    check_complete(out_d, k)
    return out_d, out_i


def search_block(
    index: Any, x: np.ndarray, q: np.ndarray, k: int, params: IndexParams
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (float64 distances, rows of ``x``) of prepared queries ``q``, k <= len(x).

    ``index`` holds the vectors ``x`` (all training rows, or one shard's). K' candidates are
    recalled and re-ranked exactly; an exact index recalls k plus a margin, so that float32
    near-ties resolve in float64. A query may land in inverted lists that hold fewer than k
    items in all: those few queries are searched exactly instead of failing.
    """
    q = np.ascontiguousarray(q)
    exact = params.kind == "exact"
    k_prime = k + _RERANK_MARGIN if exact else max(k, params.n_candidates or k)
    _, cand = index.search(q, min(len(x), k_prime))
    short = np.count_nonzero(cand >= 0, axis=1) < k
    if short.all():
        return exact_search(x, q, k, params.metric)
    out_d = np.empty((len(q), k), dtype=np.float64)
    out_i = np.empty((len(q), k), dtype=np.int64)
    out_d[~short], out_i[~short] = rerank(x, q[~short], cand[~short], k, params.metric)
    if short.any():
        out_d[short], out_i[short] = exact_search(x, q[short], k, params.metric)
    return out_d, out_i


def search(
    index: Any, x: np.ndarray, q: np.ndarray, k: int, params: IndexParams, *,
    progress: bool = False, label: str = "search top-k",
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Top-k (distances float64, training rows int64) of prepared queries ``q``.

    Queries go in batches through ``search_block``, so memory holds one batch's candidate
    lists, never all of them. ``progress``: a bar named ``label``, one step per batch.
    """
    out_d = np.empty((len(q), k), dtype=np.float64)
    out_i = np.empty((len(q), k), dtype=np.int64)
    with bar(len(q), label, progress=progress, unit="query") as shown:
        for s in range(0, len(q), _SEARCH_BATCH):
            batch = slice(s, s + _SEARCH_BATCH)
            out_d[batch], out_i[batch] = search_block(index, x, q[batch], k, params)
            shown.update(len(out_d[batch]))
    return out_d, out_i


def index_search(
    index: Any, q: np.ndarray, k: int, params: IndexParams
) -> tuple[np.ndarray, np.ndarray]:
    """The index's own top k with its own distances (for PQ: of the compressed codes), no
    re-rank, in the metric's units. Missing matches have row -1 and distance inf."""
    raw, rows = index.search(np.ascontiguousarray(q), k)
    d = raw.astype(np.float64)
    if params.metric == "cosine":
        # an exact cosine index scores inner products; the others squared L2 of unit vectors
        d = 1.0 - d if params.kind == "exact" else d / 2.0
        d = np.clip(d, 0.0, 2.0)
    return np.where(rows >= 0, d, np.inf), rows.astype(np.int64)


def exact_search(
    x: np.ndarray, q: np.ndarray, k: int, metric: str, block: int = 256, *,
    progress: bool = False, label: str = "exact search",
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Brute-force top-k with numpy (the oracle against which recall is measured).

    Scores ``block`` queries against ``_EXACT_BLOCK`` training rows at a time and keeps a
    running top-(k + 8) per query, so memory stays bounded for any n (x may be memory-mapped).
    ``progress``: a bar named ``label``, one step per block of queries.
    """
    with bar(len(q), label, progress=progress, unit="query") as shown:
        return _exact_blocks(x, q, k, metric, block, shown.update)


def _exact_blocks(
    x: np.ndarray, q: np.ndarray, k: int, metric: str, block: int, tick: Any
) -> tuple[np.ndarray, np.ndarray]:
    kp = min(len(x), k + _RERANK_MARGIN)
    out_d = np.empty((len(q), k), dtype=np.float64)
    out_i = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), block):
        qb = np.asarray(q[s : s + block], dtype=np.float32)
        best_s = np.full((len(qb), 0), -np.inf, dtype=np.float32)
        best_i = np.empty((len(qb), 0), dtype=np.int64)
        for lo in range(0, len(x), _EXACT_BLOCK):
            xb = np.asarray(x[lo : lo + _EXACT_BLOCK], dtype=np.float32)
            score = qb @ xb.T
            if metric != "cosine":  # -|q - x|^2 up to a per-query constant
                score = 2 * score - np.einsum("nd,nd->n", xb, xb)[None, :]
            rows = np.broadcast_to(np.arange(lo, lo + len(xb)), score.shape)
            best_s = np.concatenate([best_s, score], axis=1)
            best_i = np.concatenate([best_i, rows], axis=1)
            if best_s.shape[1] > kp:
                part = np.argpartition(-best_s, kp - 1, axis=1)[:, :kp]
                best_s = np.take_along_axis(best_s, part, axis=1)
                best_i = np.take_along_axis(best_i, part, axis=1)
        out_d[s : s + len(qb)], out_i[s : s + len(qb)] = rerank(x, qb, best_i, k, metric)
        tick(len(qb))
    return out_d, out_i


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact top-k list found in the approximate top-k list."""
    k = exact.shape[1]
    hits = [
        len(np.intersect1d(a, e, assume_unique=True)) for a, e in zip(approx, exact, strict=False)
    ]
    return float(np.sum(hits) / (k * len(exact)))


def recall_rows(n_queries: int, sample: int = 1000, seed: int = 0) -> np.ndarray:
    """The sorted rows of the (up to ``sample``) queries on which recall@k is measured."""
    n_q = min(sample, n_queries)
    return np.sort(np.random.default_rng(seed).choice(n_queries, n_q, replace=False))


def measure_recall(
    index: Any,
    x: np.ndarray,
    q: np.ndarray,
    k: int,
    params: IndexParams,
    sample: int = 1000,
    seed: int = 0,
) -> tuple[float, int]:
    """recall@k of ``search`` against ``exact_search`` on up to ``sample`` queries of ``q``.

    Returns (recall, number of queries used). An exact index has recall 1 by construction.
    """
    n_q = min(sample, len(q))
    if params.kind == "exact" or n_q == 0:
        return 1.0, n_q
    rows = recall_rows(len(q), sample, seed)
    _, approx = search(index, x, q[rows], k, params)
    _, exact = exact_search(x, q[rows], k, params.metric)
    return recall_at_k(approx, exact), n_q
