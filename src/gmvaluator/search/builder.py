"""Building a faiss index over prepared training vectors, and tuning ``auto`` to its target.

``build`` trains and fills the index that ``IndexParams`` describe. For ``auto`` (params with
a ``target_recall``) ``build_tuned`` then picks the cheapest nprobe and K' whose recall@k on
held-out training queries reaches the target, or falls back to exact search; the choice, its
reason and the measured recall travel in ``IndexParams`` into ``index.json``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

import numpy as np

from gmvaluator.progress import bar
from gmvaluator.search.distance import candidate_distances
from gmvaluator.search.params import DEFAULT_TARGET_RECALL, IndexParams
from gmvaluator.search.topk import exact_search, recall_at_k, top_k

#: Largest K' that tuning tries before falling back to exact search.
MAX_TUNED_CANDIDATES = 4096
#: Vectors used to train PQ / IVF codebooks (a random sample when the set is larger).
MAX_TRAIN_SAMPLE = 100_000
#: ``auto`` trains IVF-PQ on this many vectors per inverted list (and per PQ centroid), which
#: halved the build at n = 100k with the same tuned settings and recall as training on 100k.
AUTO_TRAIN_PER_LIST = 40
#: ``auto`` trains each PQ sub-quantizer on at most this many vectors per centroid, for this
#: many k-means iterations (faiss: 256 and 25). The exact re-rank and the recall tuning make up
#: for coarser codes: at n = 100k this halved codebook training, same nprobe, K' and recall.
AUTO_PQ_POINTS_PER_CENTROID = 64
AUTO_PQ_ITERATIONS = 10
#: Rows added to an index at a time, so that a memory-mapped x is read block by block.
_ADD_BLOCK = 1 << 14


def build(x: np.ndarray, params: IndexParams, seed: int = 0, *, progress: bool = False) -> Any:
    """Build and train the faiss index described by ``params`` over prepared vectors ``x``.

    ``progress``: a bar of the rows added, which says when the codebooks are being trained.
    """
    with bar(len(x), f"index build ({params.kind})", progress=progress, unit="vec") as shown:
        return _build(x, params, seed, shown)


def _build(x: np.ndarray, params: IndexParams, seed: int, shown: Any) -> Any:
    import faiss

    metric = (
        faiss.METRIC_INNER_PRODUCT
        if params.kind == "exact" and params.metric == "cosine"
        else (faiss.METRIC_L2)
    )
    # PQ kinds always use L2: on unit vectors it ranks exactly as cosine does.
    index = faiss.index_factory(x.shape[1], params.factory, metric)
    set_nprobe(index, params)
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
        shown.set_postfix_str(f"training on {len(sample)} vectors")
        index.train(np.ascontiguousarray(sample))
        shown.set_postfix_str("adding")
    add_rows(index, x, shown.update)
    return index


def set_nprobe(index: Any, params: IndexParams) -> None:
    """Give an IVF index the number of lists that ``params`` probe per query."""
    import faiss

    if params.kind == "ivfpq" and params.nprobe is not None:
        faiss.extract_index_ivf(index).nprobe = params.nprobe


def add_rows(index: Any, x: np.ndarray, tick: Any = None) -> None:
    """Add the rows of ``x`` to a trained index, block by block; ``tick(n)`` after each."""
    for start in range(0, len(x), _ADD_BLOCK):
        block = np.ascontiguousarray(x[start : start + _ADD_BLOCK])
        index.add(block)
        if tick is not None:
            tick(len(block))


def _seed_faiss(index: Any, seed: int) -> None:
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


def build_tuned(
    x: np.ndarray,
    params: IndexParams,
    k: int,
    *,
    seed: int = 0,
    sample: int = 1000,
    fixed: Collection[str] = (),
    progress: bool = False,
) -> tuple[Any, IndexParams]:
    """``build``, then for ``auto`` (params with a ``target_recall``) tune it to that target.

    Returns (index, params): the params record the tuned nprobe and K', the held-out recall
    they reached and, in ``reason``, why. Settings named in ``fixed`` are left as given.
    ``progress``: bars of the build and of the tuning.
    """
    index = build(x, params, seed, progress=progress)
    if params.target_recall is None:
        return index, params
    if params.kind == "exact":
        return index, replace(params, heldout_recall=1.0, heldout_queries=0)
    return _tune(index, x, params, k, sample, seed, fixed, progress)


def _tune(
    index: Any,
    x: np.ndarray,
    params: IndexParams,
    k: int,
    sample: int,
    seed: int,
    fixed: Collection[str],
    progress: bool = False,
) -> tuple[Any, IndexParams]:
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
    truth = _leave_one_out(
        exact_search(x, q, k + 1, params.metric, progress=progress, label="index tune: exact")[1],
        rows, k,
    )  # fmt: skip
    ivf = faiss.extract_index_ivf(index)
    nlist = ivf.nlist
    probes = [params.nprobe] if "nprobe" in fixed else _doubling(1, nlist)
    kps = [params.n_candidates] if "n_candidates" in fixed else _doubling(2 * k, n - 1)
    kps = [kp for kp in kps if kp is not None and kp <= MAX_TUNED_CANDIDATES] or [k]
    per_list = n / nlist * (params.m or 1)
    best: tuple[float, int, int, float] | None = None
    with bar(len(probes), "index tune", progress=progress, unit="nprobe") as shown:
        for probe in probes:
            if probe is None or (best is not None and probe * per_list >= best[0]):
                break
            shown.set_postfix_str(f"nprobe={probe}")
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
            shown.update(1)
    if best is None:
        exact = replace(
            params, kind="exact", factory="Flat", m=None, nbits=None, nlist=None, nprobe=None,
            n_candidates=k, heldout_recall=1.0, heldout_queries=len(rows),
            reason=f"{params.reason}; no ivfpq setting tried reached held-out recall@{k} "
            f"{target}, so exact",
        )  # fmt: skip
        return build(x, exact, seed, progress=progress), exact
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
