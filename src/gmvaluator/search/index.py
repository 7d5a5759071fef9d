"""Matching: a faiss index over the training embeddings, exact re-rank, and measured recall.

Every kind of index answers the same question, the top-k training items of each query by the
run's metric, in two steps: recall K' candidates from the faiss index (exact or Product
Quantization), then re-rank those candidates with the exact distance computed in float64 from
the stored embeddings. Ties are broken by training-row order, so results are deterministic.

``auto`` picks exact search for small sets and IVF-PQ above ``AUTO_EXACT_MAX``, then tunes
nprobe and K' until recall@k on held-out training queries reaches a target (``tune``); the
choice, its reason and the measured recall travel in ``IndexParams`` into ``index.json``.
Search, re-rank and exact search work in bounded blocks, so the stored embeddings may be
memory-mapped and memory grows with the index and one batch, not with n x d.

Distances (what enters the value formula):
- ``cosine``: 1 - cos(q, x) on L2-normalised embeddings, in [0, 2];
- ``sqeuclidean``: squared L2 distance on the raw embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from gmvaluator._io import atomic_path
from gmvaluator.errors import InputError, check_param

Metric = Literal["cosine", "sqeuclidean"]
IndexKind = Literal["auto", "exact", "pq", "ivfpq"]
METRICS = ("cosine", "sqeuclidean")
INDEX_KINDS = ("auto", "exact", "pq", "ivfpq")

#: ``auto`` uses exact search up to this many training items. At n = 100k, d = 512 exact faiss
#: search beat building and tuning IVF-PQ until about 30,000 queries (docs/PERFORMANCE.md); it
#: also beat numpy's BLAS 2x on the AMD machine measured, so exact search stays on faiss.
AUTO_EXACT_MAX = 100_000
#: Recall@k that ``auto`` tunes an approximate index to reach on held-out training queries.
DEFAULT_TARGET_RECALL = 0.99
#: Largest K' that tuning tries before falling back to exact search.
MAX_TUNED_CANDIDATES = 4096
#: Vectors used to train PQ / IVF codebooks (a random sample when the set is larger).
MAX_TRAIN_SAMPLE = 100_000
#: ``auto`` trains IVF-PQ on this many vectors per inverted list (and per PQ centroid), which
#: halved the build at n = 100k with the same tuned settings and recall as training on 100k.
AUTO_TRAIN_PER_LIST = 40
#: ``auto`` makes about this many times sqrt(n) inverted lists: at n = 100k, 2 sqrt(n) instead
#: of 4 sqrt(n) halved the build (coarse k-means and adding) at the same search speed and
#: recall once tuned (nprobe 1 instead of 2, K' 80 both).
AUTO_LISTS_PER_SQRT_N = 2
#: ``auto`` trains each PQ sub-quantizer on at most this many vectors per centroid, for this
#: many k-means iterations (faiss: 256 and 25). The exact re-rank and the recall tuning make up
#: for coarser codes: at n = 100k this halved codebook training, same nprobe, K' and recall.
AUTO_PQ_POINTS_PER_CENTROID = 64
AUTO_PQ_ITERATIONS = 10
#: Rows checked, normalised or added to the index at a time.
_PREPARE_BLOCK = 1 << 14
#: Rows of (queries x candidates x dim) gathered at once during re-rank.
_RERANK_BLOCK = 1 << 22
#: Candidates kept beyond k when a long candidate list is cut by float32 scores.
_RERANK_MARGIN = 8
#: Queries searched at once: bounds the (queries x K') candidate lists held in memory.
_SEARCH_BATCH = 1 << 14
#: Training rows scored at once by ``exact_search``: bounds its (queries x rows) score block.
_EXACT_BLOCK = 1 << 15


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
    #: ``auto`` only: the recall@k the settings were tuned to reach, and what they reached on
    #: held-out training queries (each searched with itself left out of its own results).
    target_recall: float | None = None
    heldout_recall: float | None = None
    heldout_queries: int | None = None

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
    target_recall: float | None = None,
) -> IndexParams:
    """Fill in every setting the user left out, with the documented defaults.

    - ``auto``: ``exact`` up to ``AUTO_EXACT_MAX`` items, else ``ivfpq``; the result carries
      ``target_recall`` (default 0.99) and ``build_tuned`` then tunes nprobe and K' to reach it.
    - ``m`` (sub-quantizers): the largest divisor of ``dim`` that is at most min(64, dim/2).
    - ``nbits``: 8 (256 centroids per sub-quantizer), fewer when there are too few items to
      train 256 centroids (at least 4 items per centroid).
    - ``nlist``: about 4 * sqrt(n) inverted lists (``auto``: 2 * sqrt(n)), at most n/39 (faiss's
      minimum points per list).
    - ``nprobe``: nlist / 8 lists visited per query (rounded up).
    - ``n_candidates`` (K'): max(10 * k, 100) PQ candidates re-ranked exactly.
    """
    check_param("Valuator", "index", kind, kind in INDEX_KINDS, f"one of {INDEX_KINDS}")
    check_param("Valuator", "metric", metric, metric in METRICS, f"one of {METRICS}")
    reason = f"asked for {kind!r}"
    target = None
    if kind == "auto":
        kind = "exact" if n <= AUTO_EXACT_MAX else "ivfpq"
        reason = f"auto: n={n} {'<=' if kind == 'exact' else '>'} {AUTO_EXACT_MAX}"
        target = DEFAULT_TARGET_RECALL if target_recall is None else target_recall
        ok = 0 < target <= 1
        check_param("Valuator", "target_recall", target, ok, "a float in the range (0, 1]")
    if kind == "exact":
        return IndexParams(
            "exact", metric, n, dim, "Flat", n_candidates=k, reason=reason, target_recall=target
        )
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
    lists = AUTO_LISTS_PER_SQRT_N if target is not None else 4
    nlist = nlist if nlist is not None else max(1, min(round(lists * math.sqrt(n)), n // 39))
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
        target_recall=target,
    )


def _default_m(dim: int) -> int:
    cap = max(1, min(64, dim // 2))
    return max(d for d in range(1, cap + 1) if dim % d == 0)


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
                    "no cosine direction. Drop such items or use --metric sqeuclidean."
                )
            block = (block / norms[:, None]).astype(np.float32)
        dest[start : start + len(block)] = block


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
        cap = MAX_TRAIN_SAMPLE
        if params.target_recall is not None and params.nlist is not None:
            cap = min(cap, max(AUTO_TRAIN_PER_LIST * params.nlist, AUTO_TRAIN_PER_LIST * 256))
        sample = x[:]
        if len(x) > cap:
            rng = np.random.default_rng(seed)
            sample = x[np.sort(rng.choice(len(x), cap, replace=False))]
        _seed_faiss(index, seed)
        if params.target_recall is not None and hasattr(index, "pq"):
            index.pq.cp.max_points_per_centroid = AUTO_PQ_POINTS_PER_CENTROID
            index.pq.cp.niter = AUTO_PQ_ITERATIONS
        index.train(np.ascontiguousarray(sample))
    for start in range(0, len(x), _PREPARE_BLOCK):  # a memory-mapped x is read block by block
        index.add(np.ascontiguousarray(x[start : start + _PREPARE_BLOCK]))
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

    Recall ``K'`` candidates from ``index``, then re-rank them exactly against ``x``. Queries
    go in batches, so memory holds one batch's candidate lists, never all of them.
    """
    k_prime = max(k, params.n_candidates or k)
    if params.kind == "exact":
        k_prime = min(len(x), k + 8)  # a margin so float32 near-ties resolve in float64
    out_d = np.empty((len(q), k), dtype=np.float64)
    out_i = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), _SEARCH_BATCH):
        qb = np.ascontiguousarray(q[s : s + _SEARCH_BATCH])
        _, cand = index.search(qb, k_prime)
        d, i = out_d[s : s + len(qb)], out_i[s : s + len(qb)]
        # A query may land in inverted lists that hold fewer than k items in all: those few
        # queries are searched exactly instead of failing.
        short = np.count_nonzero(cand >= 0, axis=1) < min(k, len(x))
        if short.all():
            d[:], i[:] = exact_search(x, qb, k, params.metric)
            continue
        d[~short], i[~short] = rerank(x, qb[~short], cand[~short], k, params.metric)
        if short.any():
            d[short], i[short] = exact_search(x, qb[short], k, params.metric)
    return out_d, out_i


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
    dist = candidate_distances(x, q, cand, metric)
    out_d, out_i = top_k(dist, cand, k)
    if not np.isfinite(out_d).all():
        raise InputError(
            f"the index returned fewer than k={k} candidates for some queries. "
            "Lower --k, raise --n-candidates or --nprobe, or use --index exact."
        )
    return out_d, out_i


def shortlist(x: np.ndarray, q: np.ndarray, cand: np.ndarray, keep: int, metric: str) -> np.ndarray:
    """The ``keep`` best candidates of each query by float32 distance (ties: lower row first).

    faiss computes the float32 distances straight from the rows of x (no gathered copy), which
    is several times cheaper than the float64 distances; those are then computed for the
    shortlist only. As in ``exact_search``, a margin beyond k lets float32 near-ties resolve in
    float64.
    """
    valid = cand >= 0
    dist = _float32_distances(x, q, cand, metric)
    key_i = np.where(valid, cand, np.iinfo(np.int64).max)
    order = np.lexsort((key_i, np.where(valid, dist, np.inf)), axis=-1)[:, :keep]
    return np.take_along_axis(cand, order, axis=1)


def _float32_distances(x: np.ndarray, q: np.ndarray, cand: np.ndarray, metric: str) -> np.ndarray:
    """(m, K') float32 distances up to a per-query constant: 1 - q.x, or |x - q|^2."""
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


def candidate_distances(x: np.ndarray, q: np.ndarray, cand: np.ndarray, metric: str) -> np.ndarray:
    """(m, K') float64 distances of each query to its candidate rows; inf where cand is -1."""
    m, kp = cand.shape
    out = np.empty((m, kp), dtype=np.float64)
    step = max(1, _RERANK_BLOCK // max(1, kp * x.shape[1]))
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


def top_k(dist: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest distances of each row; equal distances keep the lower training row."""
    key_i = np.where(cand >= 0, cand, np.iinfo(np.int64).max)
    order = np.lexsort((key_i, dist), axis=-1)[:, :k]
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(cand, order, axis=1)


def pairwise_distance(q: np.ndarray, vecs: np.ndarray, metric: str) -> np.ndarray:
    """Distances of q (b, d) to vecs (b, c, d) by ``metric``, on prepared vectors."""
    if metric == "cosine":
        return np.clip(1.0 - np.einsum("bd,bcd->bc", q, vecs), 0.0, 2.0)
    diff = vecs - q[:, None, :]
    return np.einsum("bcd,bcd->bc", diff, diff)


def exact_search(
    x: np.ndarray, q: np.ndarray, k: int, metric: str, block: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k with numpy (the oracle against which recall is measured).

    Scores ``block`` queries against ``_EXACT_BLOCK`` training rows at a time and keeps a
    running top-(k + 8) per query, so memory stays bounded for any n (x may be memory-mapped).
    """
    kp = min(len(x), k + 8)
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
    return out_d, out_i


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


def build_tuned(  # type: ignore[no-untyped-def]
    x: np.ndarray,
    params: IndexParams,
    k: int,
    *,
    seed: int = 0,
    sample: int = 1000,
    fixed: Collection[str] = (),
):
    """``build``, then for ``auto`` (params with a ``target_recall``) tune it to that target.

    Returns (index, params): the params record the tuned nprobe and K', the held-out recall
    they reached and, in ``reason``, why. Settings named in ``fixed`` are left as given.
    """
    index = build(x, params, seed)
    if params.target_recall is None:
        return index, params
    if params.kind == "exact":
        return index, replace(params, heldout_recall=1.0, heldout_queries=0)
    return tune(index, x, params, k, sample=sample, seed=seed, fixed=fixed)


def tune(  # type: ignore[no-untyped-def]
    index,
    x: np.ndarray,
    params: IndexParams,
    k: int,
    *,
    sample: int = 1000,
    seed: int = 0,
    fixed: Collection[str] = (),
):
    """The cheapest (nprobe, K') whose recall@k on held-out queries reaches the target.

    Queries are up to ``sample`` training vectors, each searched with itself left out of its
    own results (the index holds it; generated samples may not exist yet at fit time). Cost
    per query is modelled as PQ codes scanned times sub-quantizers plus K' times the
    dimension (the float64 re-rank). When no setting reaches the target the index falls back
    to exact search, and the reason says so.
    """
    import faiss

    target = float(params.target_recall or DEFAULT_TARGET_RECALL)
    n, dim = x.shape
    rng = np.random.default_rng(seed + 1)
    rows = np.sort(rng.choice(n, min(sample, n), replace=False))
    q = np.ascontiguousarray(x[rows])
    truth = _leave_one_out(exact_search(x, q, k + 1, params.metric)[1], rows, k)
    ivf = faiss.extract_index_ivf(index)
    nlist = ivf.nlist
    probes = [params.nprobe] if "nprobe" in fixed else _doubling(1, nlist)
    kps = [params.n_candidates] if "n_candidates" in fixed else _doubling(2 * k, n - 1)
    kps = [kp for kp in kps if kp is not None and kp <= MAX_TUNED_CANDIDATES] or [k]
    per_list = n / nlist * (params.m or 1)
    best: tuple[float, int, int, float] | None = None
    for probe in probes:
        if probe is None or (best is not None and probe * per_list >= best[0]):
            break
        ivf.nprobe = probe
        _, found = index.search(q, min(n, kps[-1] + 1))
        cand = found.astype(np.int64)
        dist, last = np.empty((len(q), 0)), -1.0
        for kp in kps:
            cost = probe * per_list + kp * dim
            if best is not None and cost >= best[0]:
                break
            # Exact distances only for the candidates not scored yet (K' doubles each step).
            more = cand[:, dist.shape[1] : kp + 1]
            dist = np.hstack([dist, candidate_distances(x, q, more, params.metric)])
            _, got = top_k(dist, cand[:, : dist.shape[1]], k + 1)
            recall = recall_at_k(_leave_one_out(got, rows, k), truth)
            if recall >= target:
                best = (cost, probe, kp, recall)
                break
            if recall <= last + 1e-3:  # more candidates no longer help: more lists must
                break
            last = recall
    if best is None:
        exact = replace(
            params, kind="exact", factory="Flat", m=None, nbits=None, nlist=None, nprobe=None,
            n_candidates=k, heldout_recall=1.0, heldout_queries=len(rows),
            reason=f"{params.reason}; no ivfpq setting tried reached held-out recall@{k} "
            f"{target}, so exact",
        )  # fmt: skip
        return build(x, exact, seed), exact
    _, probe, kp, recall = best
    ivf.nprobe = probe
    why = (
        f"{params.reason}; tuned nprobe={probe}, K'={kp}: held-out recall@{k} {recall:.4f} "
        f">= target {target} on {len(rows)} training queries"
    )
    tuned = replace(
        params, nprobe=probe, n_candidates=kp, heldout_recall=recall,
        heldout_queries=len(rows), reason=why,
    )  # fmt: skip
    return index, tuned


def _doubling(start: int, stop: int) -> list[int]:
    """start, 2*start, 4*start, ... below stop, then stop itself."""
    out, v = [], max(1, start)
    while v < stop:
        out.append(v)
        v *= 2
    return [*out, max(1, stop)]


def _leave_one_out(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Each query's results without the query's own training row, first k kept in order."""
    other = found != rows[:, None]
    order = np.argsort(~other, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1)


def with_overrides(params: IndexParams, **changes: object) -> IndexParams:
    """A copy of ``params`` with search-time settings (nprobe, n_candidates) changed."""
    return replace(params, **changes)  # type: ignore[arg-type]
