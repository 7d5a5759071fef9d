"""The GMValuator value: softmax credit over each generated sample's top-k training matches.

    V(x_i, g_j) = q_j * exp(-d_ij / T) / sum_{l in P_j} exp(-d_lj / T)   for i in P_j, else 0
    phi_i       = sum_j V(x_i, g_j)

``Valuator`` holds the fitted index over the training embeddings; ``value`` never changes it,
so one fitted valuator serves many generated sets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator._io import atomic_path, hash_array, read_json, save_npy, write_json
from gmvaluator.core.result import ValuationResult
from gmvaluator.errors import InputError, check_param
from gmvaluator.search import index as ix

FORMAT_VERSION = 1


def softmax_credit(
    distances: np.ndarray, temperature: float = 1.0, quality: np.ndarray | None = None
) -> np.ndarray:
    """Credit of each match: a softmax of -d/T over each row, scaled by that row's quality.

    Stable for any distance scale: the row minimum is subtracted before ``exp``, so the best
    match has weight exactly 1 and the sum never underflows to zero. Rows sum to ``quality``.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2:
        raise InputError(f"distances must be 2-D (generated, k); got shape {d.shape}.")
    check_param("softmax_credit", "temperature", temperature, temperature > 0, "a float > 0")
    w = np.exp(-(d - d.min(axis=1, keepdims=True)) / temperature)
    credit = w / w.sum(axis=1, keepdims=True)
    if quality is not None:
        credit *= np.asarray(quality, dtype=np.float64)[:, None]
    return credit


def check_quality(quality: Any, m: int, ids: np.ndarray | None = None) -> np.ndarray:
    """Quality scores as float64 (m,), each finite and >= 0; None means all ones."""
    if quality is None:
        return np.ones(m, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64).reshape(-1)
    if q.shape != (m,):
        raise InputError(f"quality must have one score per generated sample ({m}); got {q.size}.")
    bad = ~np.isfinite(q) | (q < 0)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        name = str(ids[j]) if ids is not None else j
        raise InputError(
            f"quality of generated sample {name!r} is {q[j]}; scores must be finite and >= 0."
        )
    return q


@dataclass(frozen=True)
class _Fitted:
    index: Any
    embeddings: np.ndarray
    ids: np.ndarray
    params: ix.IndexParams
    embeddings_hash: str
    build_seconds: float


class Valuator:
    """Values training items by their similarity to generated samples (GMValuator).

    Parameters
    ----------
    k : int, default 10
        Training matches per generated sample (the set P_j).
    index : {"auto", "exact", "pq", "ivfpq"}, default "auto"
        How candidates are recalled; every kind is followed by an exact re-rank.
    metric : {"cosine", "sqeuclidean"}, default "cosine"
        Distance d_ij: 1 - cosine similarity, or squared L2 on the raw embeddings.
    temperature : float, default 1.0
        T in exp(-d / T); the paper uses 1.
    m, nbits, nlist, nprobe, n_candidates :
        PQ / IVF settings; None resolves to the defaults of ``index.resolve_params``.
    target_recall : float, default 0.99
        ``index="auto"`` only: nprobe and K' are tuned until recall@k on held-out training
        queries reaches this (recorded in ``index_params_``).
    recall_sample : int, default 1000
        Generated queries on which recall@k is measured against exact search.
    random_state : int, default 0
        Seed for codebook training and the recall sample.
    """

    def __init__(
        self,
        k: int = 10,
        index: str = "auto",
        metric: str = "cosine",
        temperature: float = 1.0,
        *,
        m: int | None = None,
        nbits: int | None = None,
        nlist: int | None = None,
        nprobe: int | None = None,
        n_candidates: int | None = None,
        recall_sample: int = 1000,
        target_recall: float = 0.99,
        random_state: int = 0,
    ) -> None:
        self.k = k
        self.index = index
        self.metric = metric
        self.temperature = temperature
        self.m = m
        self.nbits = nbits
        self.nlist = nlist
        self.nprobe = nprobe
        self.n_candidates = n_candidates
        self.recall_sample = recall_sample
        self.target_recall = target_recall
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        keys = (
            "k",
            "index",
            "metric",
            "temperature",
            "m",
            "nbits",
            "nlist",
            "nprobe",
            "n_candidates",
            "recall_sample",
            "target_recall",
            "random_state",
        )
        return {key: getattr(self, key) for key in keys}

    def _validate_params(self) -> None:
        name = type(self).__name__
        for key in ("k", "recall_sample"):
            v = getattr(self, key)
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool) and bool(v >= 1)
            check_param(name, key, v, ok, "an int in the range [1, inf)")
        t = self.temperature
        ok = (
            isinstance(t, (int, float))
            and not isinstance(t, bool)
            and bool(np.isfinite(t))
            and t > 0
        )
        check_param(name, "temperature", t, ok, "a float in the range (0, inf)")
        check_param(
            name, "index", self.index, self.index in ix.INDEX_KINDS, f"one of {ix.INDEX_KINDS}"
        )
        check_param(name, "metric", self.metric, self.metric in ix.METRICS, f"one of {ix.METRICS}")

    def fit(
        self, train_embeddings: np.ndarray, ids: Any = None, *, store: str | Path | None = None
    ) -> Valuator:
        """Index the training embeddings (n, d). ``ids`` default to row numbers as strings.

        With ``store`` (a folder) the prepared embeddings kept for re-ranking are written there
        as ``embeddings.npy`` and memory-mapped instead of held in memory; ``save`` to the same
        folder then reuses that file.
        """
        self._validate_params()
        out = Path(store) / "embeddings.npy" if store is not None else None
        x = ix.prepare(train_embeddings, self.metric, "training embeddings", out=out)
        n = len(x)
        ids_arr = _as_ids(ids, n, "training")
        if self.k > n:
            raise InputError(
                f"k={self.k} is larger than the training set ({n} items). Use --k {n} or fewer."
            )
        params = ix.resolve_params(
            self.index,
            self.metric,
            n,
            x.shape[1],
            self.k,
            m=self.m,
            nbits=self.nbits,
            nlist=self.nlist,
            nprobe=self.nprobe,
            n_candidates=self.n_candidates,
            target_recall=self.target_recall,
        )
        t0 = time.perf_counter()
        given = [key for key in ("nprobe", "n_candidates") if getattr(self, key) is not None]
        faiss_index, params = ix.build_tuned(
            x, params, self.k, seed=self.random_state, sample=self.recall_sample, fixed=given
        )
        self.fitted_ = _Fitted(
            faiss_index, x, ids_arr, params, hash_array(x), time.perf_counter() - t0
        )
        return self

    # -- fitted attributes, named after scikit-learn's trailing underscore -------------------
    @property
    def index_params_(self) -> ix.IndexParams:
        return self._fitted().params

    @property
    def train_ids_(self) -> np.ndarray:
        return self._fitted().ids

    @property
    def n_train_(self) -> int:
        return len(self._fitted().ids)

    def _fitted(self) -> _Fitted:
        if not hasattr(self, "fitted_"):
            raise InputError("This Valuator is not fitted yet. Call 'fit' first.")
        return self.fitted_

    def kneighbors(self, generated_embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (distances, training rows) of each generated sample, after exact re-rank."""
        f = self._fitted()
        q = self._prepare_queries(generated_embeddings)
        return ix.search(f.index, f.embeddings, q, self.k, f.params)

    def candidates(
        self, generated_embeddings: np.ndarray, n_candidates: int, *, exact: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n_candidates`` (K') best training rows of each generated sample, not cut to k.

        ``exact`` orders and measures them by the exact distance, as ``kneighbors`` does;
        without it they are the recall index's own top K' with its own (for PQ: approximate)
        distances, in the valuator's metric. Missing candidates have row -1 and distance inf.
        """
        f = self._fitted()
        q = self._prepare_queries(generated_embeddings)
        kp = min(len(f.ids), max(1, int(n_candidates)))
        if exact:
            return ix.search(f.index, f.embeddings, q, kp, f.params)
        raw, rows = f.index.search(q, kp)
        d = raw.astype(np.float64)
        if self.metric == "cosine":
            # an exact cosine index scores inner products; the others squared L2 of unit vectors
            d = 1.0 - d if f.params.kind == "exact" else d / 2.0
            d = np.clip(d, 0.0, 2.0)
        return np.where(rows >= 0, d, np.inf), rows.astype(np.int64)

    def _prepare_queries(self, g: np.ndarray) -> np.ndarray:
        f = self._fitted()
        q = ix.prepare(g, self.metric, "generated embeddings")
        check_same_dim(f.embeddings.shape[1], q.shape[1])
        return q

    def value(
        self,
        generated_embeddings: np.ndarray,
        quality: Any = None,
        ids: Any = None,
        *,
        search: Callable[[Any, np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> ValuationResult:
        """Value the training set against generated samples (m, d); q_j defaults to 1.

        ``search(fitted, prepared_queries, k) -> (distances, rows)`` replaces the local top-k
        search (the Ray engine spreads it over index shards); everything else is the same.
        """
        f = self._fitted()
        q = self._prepare_queries(generated_embeddings)
        gen_ids = _as_ids(ids, len(q), "generated")
        qual = check_quality(quality, len(q), gen_ids)
        t0 = time.perf_counter()
        if search is None:
            dist, rows = ix.search(f.index, f.embeddings, q, self.k, f.params)
        else:
            dist, rows = search(f, q, self.k)
        t_search = time.perf_counter() - t0
        credit = softmax_credit(dist, self.temperature, qual)
        n = len(f.ids)
        values = np.bincount(rows.ravel(), weights=credit.ravel(), minlength=n)
        counts = np.bincount(rows.ravel(), minlength=n)
        t0 = time.perf_counter()
        recall, n_recall = ix.measure_recall(
            f.index, f.embeddings, q, self.k, f.params, self.recall_sample, self.random_state
        )
        return ValuationResult(
            train_ids=f.ids,
            generated_ids=gen_ids,
            values=values,
            n_matches=counts,
            distances=dist,
            indices=rows,
            credits=credit,
            quality=qual,
            config=self.describe(),
            recall=recall,
            recall_queries=n_recall,
            timings={
                "index_build_s": f.build_seconds,
                "search_s": t_search,
                "recall_s": time.perf_counter() - t0,
            },
        )

    def describe(self) -> dict[str, Any]:
        """The resolved configuration: parameters plus the index actually built."""
        f = self._fitted()
        return {
            "valuator": self.get_params(),
            "index": f.params.to_dict(),
            "distance": _DISTANCE_DOC[self.metric],
            "embeddings_sha256": f.embeddings_hash,
        }

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the fitted valuator to a folder: faiss index, embeddings, ids and JSON.

        ``extra`` adds keys to ``index.json`` (a run records its source hash there).
        """
        import faiss

        f = self._fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        stored = getattr(f.embeddings, "filename", None)
        if stored is None or Path(stored).resolve() != (path / "embeddings.npy").resolve():
            save_npy(path / "embeddings.npy", np.asarray(f.embeddings))
        save_npy(path / "ids.npy", f.ids.astype(str))
        with atomic_path(path / "index.faiss") as tmp:
            faiss.write_index(f.index, str(tmp))
        meta = {"format_version": FORMAT_VERSION, **self.describe(), "build_s": f.build_seconds}
        meta.update(extra or {})
        write_json(path / "index.json", meta)
        return path

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> Valuator:
        """Reopen a folder written by ``save``; the stored embeddings are checked by hash."""
        import faiss

        path = Path(path)
        if not (path / "index.json").is_file():
            raise InputError(f"{path} holds no saved valuator (no index.json). Check the path.")
        meta = read_json(path / "index.json")
        if meta.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{path}: unsupported valuator format {meta.get('format_version')}.")
        x = np.load(path / "embeddings.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
        if hash_array(np.asarray(x)) != meta["embeddings_sha256"]:
            raise InputError(f"{path}/embeddings.npy does not match index.json; rebuild the index.")
        ids = np.load(path / "ids.npy", allow_pickle=False)
        self = cls(**meta["valuator"])
        params = ix.IndexParams(**meta["index"])
        index = faiss.read_index(str(path / "index.faiss"))
        self.fitted_ = _Fitted(index, x, ids, params, meta["embeddings_sha256"], meta["build_s"])
        return self


_DISTANCE_DOC = {
    "cosine": "1 - cosine similarity of L2-normalised embeddings, in [0, 2]",
    "sqeuclidean": "squared Euclidean distance of the raw embeddings",
}


def check_same_dim(train_dim: int, generated_dim: int) -> None:
    if train_dim != generated_dim:
        raise InputError(
            f"generated embeddings have {generated_dim} dimensions but the training embeddings "
            f"have {train_dim}. Embed both sets with the same embedder."
        )


def _as_ids(ids: Any, n: int, what: str) -> np.ndarray:
    if ids is None:
        return np.array([str(i) for i in range(n)])
    arr = np.asarray([str(i) for i in ids])
    if len(arr) != n:
        raise InputError(f"{len(arr)} {what} ids for {n} {what} embeddings; give one id per row.")
    uniq, counts = np.unique(arr, return_counts=True)
    if len(uniq) != n:
        raise InputError(
            f"{what} ids must be unique; {uniq[counts > 1][:3].tolist()} repeat. Fix the ids."
        )
    return arr
