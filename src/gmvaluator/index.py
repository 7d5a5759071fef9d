"""Matching: a faiss index over the training embeddings, exact re-rank, and measured recall.

Every kind of index answers the same question, the top-k training items of each query by the
run's metric, in two steps: recall K' candidates from the faiss index (exact or Product
Quantization), then re-rank those candidates with the exact distance computed in float64 from
the stored embeddings. Ties are broken by training-row order, so results are deterministic.

Distances (what enters the value formula):
- ``cosine``: 1 - cos(q, x) on L2-normalised embeddings, in [0, 2];
- ``sqeuclidean``: squared L2 distance on the raw embeddings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from gmvaluator.errors import InputError, check_param

Metric = Literal["cosine", "sqeuclidean"]
IndexKind = Literal["auto", "exact", "pq", "ivfpq"]
METRICS = ("cosine", "sqeuclidean")
INDEX_KINDS = ("auto", "exact", "pq", "ivfpq")

#: ``auto`` uses exact search up to this many training items: measured here, exact faiss search
#: over 100k x 512 answers ~1,100 queries/s, so an approximate index pays off only above it.
AUTO_EXACT_MAX = 100_000
#: Vectors used to train PQ / IVF codebooks (a random sample when the set is larger).
MAX_TRAIN_SAMPLE = 100_000
#: Rows of (queries x candidates x dim) gathered at once during re-rank.
_RERANK_BLOCK = 1 << 22


@dataclass(frozen=True)
class IndexParams:
    """The resolved settings of one index; ``factory`` is the faiss factory string."""

    kind: str
    metric: str
    n: int
    dim: int
    factory: str
    m: int | None = None
    nbits: int | None = None
    nlist: int | None = None
    nprobe: int | None = None
    n_candidates: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def resolve_params(
    kind: str,
    metric: str,
    n: int,
    dim: int,
    k: int,
    *,
    m: int | None = None,
    nbits: int | None = None,
    nlist: int | None = None,
    nprobe: int | None = None,
    n_candidates: int | None = None,
) -> IndexParams:
    """Fill in every setting the user left out, with the documented defaults.

    - ``auto``: ``exact`` up to ``AUTO_EXACT_MAX`` items, else ``ivfpq``.
    - ``m`` (sub-quantizers): the largest divisor of ``dim`` that is at most min(64, dim/2).
    - ``nbits``: 8 (256 centroids per sub-quantizer), fewer when there are too few items to
      train 256 centroids (at least 4 items per centroid).
    - ``nlist``: about 4 * sqrt(n) inverted lists, at most n/39 (faiss's minimum points per list).
    - ``nprobe``: nlist / 8 lists visited per query (rounded up).
    - ``n_candidates`` (K'): max(10 * k, 100) PQ candidates re-ranked exactly.
    """
    check_param("Valuator", "index", kind, kind in INDEX_KINDS, f"one of {INDEX_KINDS}")
    check_param("Valuator", "metric", metric, metric in METRICS, f"one of {METRICS}")
    reason = f"asked for {kind!r}"
    if kind == "auto":
        kind = "exact" if n <= AUTO_EXACT_MAX else "ivfpq"
        reason = f"auto: n={n} {'<=' if kind == 'exact' else '>'} {AUTO_EXACT_MAX}"
    if kind == "exact":
        return IndexParams("exact", metric, n, dim, "Flat", n_candidates=k, reason=reason)
    if n < 16:
        raise InputError(
            f"index {kind!r} needs at least 16 training items to train its codebooks; got {n}. "
            "Use --index exact."
        )
    m = m if m is not None else _default_m(dim)
    check_param("Valuator", "m", m, m >= 1 and dim % m == 0, f"a divisor of the dimension {dim}")
    nbits = nbits if nbits is not None else max(1, min(8, int(math.log2(n / 4))))
    check_param("Valuator", "nbits", nbits, 1 <= nbits <= 16, "an int in the range [1, 16]")
    n_candidates = max(k, n_candidates if n_candidates is not None else max(10 * k, 100))
    n_candidates = min(n_candidates, n)
    if kind == "pq":
        return IndexParams(
            "pq",
            metric,
            n,
            dim,
            f"PQ{m}x{nbits}",
            m=m,
            nbits=nbits,
            n_candidates=n_candidates,
            reason=reason,
        )
    nlist = nlist if nlist is not None else max(1, min(round(4 * math.sqrt(n)), n // 39))
    check_param("Valuator", "nlist", nlist, 1 <= nlist <= n, f"an int in the range [1, {n}]")
    nprobe = nprobe if nprobe is not None else max(1, math.ceil(nlist / 8))
    nprobe = min(nprobe, nlist)
    return IndexParams(
        "ivfpq",
        metric,
        n,
        dim,
        f"IVF{nlist},PQ{m}x{nbits}",
        m=m,
        nbits=nbits,
        nlist=nlist,
        nprobe=nprobe,
        n_candidates=n_candidates,
        reason=reason,
    )


def _default_m(dim: int) -> int:
    cap = max(1, min(64, dim // 2))
    return max(d for d in range(1, cap + 1) if dim % d == 0)


def prepare(x: np.ndarray, metric: str, what: str = "embeddings") -> np.ndarray:
    """Check embeddings at the boundary and return float32 C-contiguous vectors to index.

    For ``cosine`` the rows are L2-normalised; a zero row has no direction and is refused.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(
            f"{what} must be a 2-D array (items, dimensions); got shape {x.shape}. "
            "Reshape them or pass images through an embedder."
        )
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{what} must be numeric; got dtype {x.dtype}.")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise InputError(
            f"{what} row {int(np.flatnonzero(bad)[0])} has NaN or infinite values "
            f"({int(bad.sum())} such rows). Fix or drop those items."
        )
    if metric == "cosine":
        norms = np.linalg.norm(x.astype(np.float64), axis=1)
        zero = norms == 0
        if zero.any():
            raise InputError(
                f"{what} row {int(np.flatnonzero(zero)[0])} is all zeros, which has no cosine "
                "direction. Drop such items or use --metric sqeuclidean."
            )
        x = (x / norms[:, None]).astype(np.float32)
    return x


def build(x: np.ndarray, params: IndexParams, seed: int = 0):  # type: ignore[no-untyped-def]
    """Build and train the faiss index described by ``params`` over prepared vectors ``x``."""
    import faiss

    metric = (
        faiss.METRIC_INNER_PRODUCT
        if params.kind == "exact" and params.metric == "cosine"
        else (faiss.METRIC_L2)
    )
    # PQ kinds always use L2: on unit vectors it ranks exactly as cosine does.
    index = faiss.index_factory(x.shape[1], params.factory, metric)
    if params.kind == "ivfpq" and params.nprobe is not None:
        faiss.extract_index_ivf(index).nprobe = params.nprobe
    if not index.is_trained:
        sample = x
        if len(x) > MAX_TRAIN_SAMPLE:
            rng = np.random.default_rng(seed)
            sample = x[np.sort(rng.choice(len(x), MAX_TRAIN_SAMPLE, replace=False))]
        _seed_faiss(index, seed)
        index.train(sample)
    index.add(x)
    return index


def _seed_faiss(index, seed: int) -> None:  # type: ignore[no-untyped-def]
    # Polysemous training (on by default in the factory) is an annealing that took ~70x the
    # codebook training here and only serves Hamming-distance filtering, which is not used.
    if hasattr(index, "do_polysemous_training"):
        index.do_polysemous_training = False
    if hasattr(index, "cp"):
        index.cp.seed = seed
    if hasattr(index, "pq"):
        index.pq.cp.seed = seed
        # nbits is already capped by the training size; silence faiss's per-call warning.
        index.pq.cp.min_points_per_centroid = 1


def search(
    index, x: np.ndarray, q: np.ndarray, k: int, params: IndexParams
) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Top-k (distances float64, training rows int64) of prepared queries ``q``.

    Recall ``K'`` candidates from ``index``, then re-rank them exactly against ``x``.
    """
    k_prime = max(k, params.n_candidates or k)
    if params.kind == "exact":
        k_prime = min(len(x), k + 8)  # a margin so float32 near-ties resolve in float64
    _, cand = index.search(q, k_prime)
    return rerank(x, q, cand, k, params.metric)


def rerank(
    x: np.ndarray, q: np.ndarray, cand: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 distances of each query to its candidates; keep the k best per row.

    Missing candidates (faiss returns -1) sort last. Equal distances keep the lower row first.
    """
    cand = np.asarray(cand, dtype=np.int64)
    m, kp = cand.shape
    out_d = np.empty((m, k), dtype=np.float64)
    out_i = np.empty((m, k), dtype=np.int64)
    step = max(1, _RERANK_BLOCK // max(1, kp * x.shape[1]))
    for s in range(0, m, step):
        c = cand[s : s + step]
        valid = c >= 0
        vecs = x[np.where(valid, c, 0)].astype(np.float64)
        dist = pairwise_distance(q[s : s + step].astype(np.float64), vecs, metric)
        dist = np.where(valid, dist, np.inf)
        key_i = np.where(valid, c, np.iinfo(np.int64).max)
        order = np.lexsort((key_i, dist), axis=-1)[:, :k]
        out_d[s : s + step] = np.take_along_axis(dist, order, axis=1)
        out_i[s : s + step] = np.take_along_axis(c, order, axis=1)
    if not np.isfinite(out_d).all():
        raise InputError(
            f"the index returned fewer than k={k} candidates for some queries. "
            "Lower --k, raise --n-candidates or --nprobe, or use --index exact."
        )
    return out_d, out_i


def pairwise_distance(q: np.ndarray, vecs: np.ndarray, metric: str) -> np.ndarray:
    """Distances of q (b, d) to vecs (b, c, d) by ``metric``, on prepared vectors."""
    if metric == "cosine":
        return np.clip(1.0 - np.einsum("bd,bcd->bc", q, vecs), 0.0, 2.0)
    diff = vecs - q[:, None, :]
    return np.einsum("bcd,bcd->bc", diff, diff)


def exact_search(
    x: np.ndarray, q: np.ndarray, k: int, metric: str, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k with numpy (the oracle against which recall is measured)."""
    x_sq = np.einsum("nd,nd->n", x, x)
    cands = []
    kp = min(len(x), k + 8)
    for s in range(0, len(q), block):
        qb = q[s : s + block]
        score = qb @ x.T if metric == "cosine" else 2 * (qb @ x.T) - x_sq[None, :]
        part = (
            np.argpartition(-score, kp - 1, axis=1)[:, :kp]
            if kp < len(x)
            else (np.broadcast_to(np.arange(len(x)), (len(qb), len(x))))
        )
        cands.append(part)
    return rerank(x, q, np.concatenate(cands), k, metric)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact top-k list found in the approximate top-k list."""
    k = exact.shape[1]
    hits = [
        len(np.intersect1d(a, e, assume_unique=True)) for a, e in zip(approx, exact, strict=False)
    ]
    return float(np.sum(hits) / (k * len(exact)))


def measure_recall(
    index,
    x: np.ndarray,
    q: np.ndarray,
    k: int,
    params: IndexParams,
    sample: int = 1000,
    seed: int = 0,
) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """recall@k of ``search`` against ``exact_search`` on up to ``sample`` queries of ``q``.

    Returns (recall, number of queries used). An exact index has recall 1 by construction.
    """
    n_q = min(sample, len(q))
    if params.kind == "exact" or n_q == 0:
        return 1.0, n_q
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(q), n_q, replace=False))
    _, approx = search(index, x, q[rows], k, params)
    _, exact = exact_search(x, q[rows], k, params.metric)
    return recall_at_k(approx, exact), n_q


def with_overrides(params: IndexParams, **changes: object) -> IndexParams:
    """A copy of ``params`` with search-time settings (nprobe, n_candidates) changed."""
    return replace(params, **changes)  # type: ignore[arg-type]
