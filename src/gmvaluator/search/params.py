"""The settings of an index: which kind, which metric, and the PQ / IVF settings left to us.

``resolve_params`` fills in every setting the user left out with its documented default, and
``IndexParams`` carries the result (with the faiss factory string, the reason for the choice
and, for ``auto``, the recall it was tuned to) into ``index.json``.

Distances (what enters the value formula):
- ``cosine``: 1 - cos(q, x) on L2-normalised embeddings, in [0, 2];
- ``sqeuclidean``: squared L2 distance on the raw embeddings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from gmvaluator.errors import InputError, check_param

Metric = Literal["cosine", "sqeuclidean"]
IndexKind = Literal["auto", "exact", "pq", "ivfpq"]
METRICS = ("cosine", "sqeuclidean")
INDEX_KINDS = ("auto", "exact", "pq", "ivfpq")

#: ``auto`` uses exact search up to this many training items when the number of queries is
#: not known (``n_queries`` None). At n = 100k, d = 512 exact faiss search beat building and
#: tuning IVF-PQ until about 30,000 queries (docs/PERFORMANCE.md); it also beat numpy's BLAS
#: 2x on the AMD machine measured, so exact search stays on faiss.
AUTO_EXACT_MAX = 100_000
#: Below this many training items ``auto`` never builds IVF-PQ: at n = 10k tuning had to probe
#: every list with K' = 1,280 to reach recall@10 0.99, 15x slower per query than exact search.
AUTO_IVFPQ_MIN = 50_000
#: The cost model of ``auto`` (``predicted_seconds``), one thread, measured by
#: bench/index_choice.py on clustered vectors (docs/PERFORMANCE.md): exact search does about
#: this many training-item x dimension products per second ...
EXACT_ND_PER_S = 3.0e10
#: ... building and tuning IVF-PQ takes this many seconds per training item (the codebooks
#: train on a capped sample; tuning's exact re-rank of up to 4,096 candidates dominates) ...
IVFPQ_BUILD_S_PER_N = 1.2e-4
#: ... and a tuned IVF-PQ query (scan and exact re-rank of its candidates) costs this fraction
#: of an exact one, plus a fixed part per query and dimension.
IVFPQ_QUERY_FRACTION = 0.06
IVFPQ_QUERY_S_PER_D = 1.0e-7
#: Generated samples on which an approximate index's recall is checked by exact search (the
#: ``Valuator``'s default ``recall_sample``): exact search pays nothing for it.
RECALL_QUERIES = 1000
#: Recall@k that ``auto`` tunes an approximate index to reach on held-out training queries.
DEFAULT_TARGET_RECALL = 0.99
#: ``auto`` makes about this many times sqrt(n) inverted lists: at n = 100k, 2 sqrt(n) instead
#: of 4 sqrt(n) halved the build (coarse k-means and adding) at the same search speed and
#: recall once tuned (nprobe 1 instead of 2, K' 80 both).
AUTO_LISTS_PER_SQRT_N = 2


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
    n_queries: int | None = None,
    reused: bool = False,
) -> IndexParams:
    """Fill in every setting the user left out, with the documented defaults.

    - ``auto``: with ``n_queries`` (the generated samples to value), the kind whose predicted
      total time (build + queries, ``predicted_seconds``) is lower, exact below
      ``AUTO_IVFPQ_MIN`` items; with ``reused`` (the index will serve more queries later, by
      ``--append`` or ``serve``) the build is paid once, so IVF-PQ is chosen from
      ``AUTO_IVFPQ_MIN`` items on. Without ``n_queries``: ``exact`` up to ``AUTO_EXACT_MAX``
      items, else ``ivfpq``. The result carries ``target_recall`` (default 0.99) and
      ``build_tuned`` then tunes nprobe and K' to reach it.
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
        kind, reason = auto_kind(n, dim, n_queries, reused)
        target = DEFAULT_TARGET_RECALL if target_recall is None else target_recall
        ok = 0 < target <= 1
        check_param("Valuator", "target_recall", target, ok, "a float in the range (0, 1]")
    if kind == "exact":
        return IndexParams(
            "exact", metric, n, dim, "Flat", n_candidates=k, reason=reason, target_recall=target
        )
    if n < 16:
        raise InputError(
            f"index={kind!r} needs at least 16 training items to train its codebooks; got {n}. "
            "Use index='exact'.",
            param="index",
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


def predicted_seconds(kind: str, n: int, dim: int, n_queries: int) -> float:
    """The predicted time to build an index of ``kind`` over n x dim vectors and search it
    with ``n_queries`` queries (the recall check included), on one thread (the constants
    above; docs/PERFORMANCE.md)."""
    nd = float(n) * dim
    exact_query = nd / EXACT_ND_PER_S
    if kind == "exact":
        return n_queries * exact_query
    per_query = IVFPQ_QUERY_FRACTION * exact_query + IVFPQ_QUERY_S_PER_D * dim
    check = min(n_queries, RECALL_QUERIES) * exact_query
    return IVFPQ_BUILD_S_PER_N * n + n_queries * per_query + check


def auto_kind(n: int, dim: int, n_queries: int | None, reused: bool) -> tuple[str, str]:
    """What ``auto`` builds, and why (``resolve_params``)."""
    if n_queries is None:
        kind = "exact" if n <= AUTO_EXACT_MAX else "ivfpq"
        return kind, f"auto: n={n} {'<=' if kind == 'exact' else '>'} {AUTO_EXACT_MAX}"
    if n < AUTO_IVFPQ_MIN:
        return "exact", f"auto: n={n} < {AUTO_IVFPQ_MIN}"
    if reused:
        return "ivfpq", f"auto: n={n} >= {AUTO_IVFPQ_MIN} and the index is reused"
    exact = predicted_seconds("exact", n, dim, n_queries)
    ivfpq = predicted_seconds("ivfpq", n, dim, n_queries)
    kind = "exact" if exact <= ivfpq else "ivfpq"
    return kind, (
        f"auto: n={n}, {n_queries} queries, d={dim}: predicted exact {exact:.3g} s, "
        f"ivfpq {ivfpq:.3g} s"
    )


def _default_m(dim: int) -> int:
    cap = max(1, min(64, dim // 2))
    return max(d for d in range(1, cap + 1) if dim % d == 0)
