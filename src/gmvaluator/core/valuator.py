"""The Valuator: the fitted index over the training embeddings, and the value it gives.

    V(x_i, g_j) = q_j * a_j * exp(-d_ij / T) / sum_{l in P_j} exp(-d_lj / T)   for i in P_j
    phi_i       = sum_j V(x_i, g_j)

``Valuator`` is a scikit-learn estimator: the constructor only stores parameters (their
defaults are those of ``gmvaluator.config.ValueConfig``), ``fit`` learns the fitted attributes
(names ending in ``_``), and ``value`` never changes them, so one fitted valuator serves many
generated sets. The credit rule itself lives in ``gmvaluator.core.credit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator import search as ix
from gmvaluator.config import ValueConfig
from gmvaluator.core import calibration as cal
from gmvaluator.core import density as dn
from gmvaluator.core.credit import CREDIT_RULES, CreditRule, resolve_temperature
from gmvaluator.core.estimator import Estimator
from gmvaluator.core.result import ValuationResult
from gmvaluator.errors import InputError, check_param
from gmvaluator.files import atomic_path, hash_array, read_json, save_npy, write_json
from gmvaluator.progress import bar as progress_bar

FORMAT_VERSION = 1
#: The one declaration of every setting's default (``random_state`` is its ``seed``).
_DEFAULTS = ValueConfig()

#: ``search(valuator, prepared_queries, k) -> (distances, training rows)``: a replacement of
#: the local top-k search (the Ray engine spreads it over index shards).
SearchHook = Callable[["Valuator", np.ndarray, int], tuple[np.ndarray, np.ndarray]]


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
    """What ``fit`` learns; read through the Valuator's fitted attributes."""

    index: Any
    embeddings: np.ndarray
    ids: np.ndarray
    params: ix.IndexParams
    embeddings_hash: str
    build_seconds: float
    credit_rule: CreditRule


class Valuator(Estimator):
    """Values training items by their similarity to generated samples (GMValuator).

    Parameters
    ----------
    k : int, default 10
        Training matches per generated sample (the set P_j).
    index : {"auto", "exact", "pq", "ivfpq"}, default "auto"
        How candidates are recalled; every kind is followed by an exact re-rank.
    metric : {"cosine", "sqeuclidean"}, default "cosine"
        Distance d_ij: 1 - cosine similarity, or squared L2 on the raw embeddings.
    temperature : float or "auto", default "auto"
        T in exp(-d / T). ``auto``: with ``credit="calibrated"`` a fixed multiple of the
        training set's median nearest-neighbour distance (``gmvaluator.core.calibration``),
        with ``credit="paper"`` the paper's 1.
    m, nbits, nlist, nprobe, n_candidates :
        PQ / IVF settings; None resolves to the defaults of ``search.resolve_params``.
    recall_sample : int, default 1000
        Generated queries on which recall@k is measured against exact search.
    target_recall : float, default 0.99
        ``index="auto"`` only: nprobe and K' are tuned until recall@k on held-out training
        queries reaches this (recorded in ``index_params_``).
    random_state : int, default 0
        Seed for codebook training, the recall sample and the calibration sample.
    credit : {"calibrated", "paper"}, default "calibrated"
        The credit rule (``gmvaluator.core.credit``): ``calibrated`` scales each generated
        sample's credit by its attributable share a_j and ranks every training item by value
        and the density of generated samples around it; ``paper`` is the GMValuator formula.

    Attributes (after ``fit``)
    --------------------------
    embeddings_, faiss_index_, train_ids_, n_train_, index_params_, embeddings_sha256_,
    build_seconds_, credit_rule_ : see each property.

    ``get_params``, ``set_params`` and ``sklearn.base.clone`` work as for any scikit-learn
    estimator (``gmvaluator.core.estimator``).
    """

    def __init__(
        self,
        k: int = _DEFAULTS.k,
        index: str = _DEFAULTS.index,
        metric: str = _DEFAULTS.metric,
        temperature: float | str = _DEFAULTS.temperature,
        *,
        m: int | None = _DEFAULTS.m,
        nbits: int | None = _DEFAULTS.nbits,
        nlist: int | None = _DEFAULTS.nlist,
        nprobe: int | None = _DEFAULTS.nprobe,
        n_candidates: int | None = _DEFAULTS.n_candidates,
        recall_sample: int = _DEFAULTS.recall_sample,
        target_recall: float = _DEFAULTS.target_recall,
        random_state: int = _DEFAULTS.seed,
        credit: str = _DEFAULTS.credit,
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
        self.credit = credit

    def _validate_params(self) -> None:
        name = type(self).__name__
        for key in ("k", "recall_sample"):
            v = getattr(self, key)
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool) and bool(v >= 1)
            check_param(name, key, v, ok, "an int in the range [1, inf)")
        t = self.temperature
        ok = t == "auto" or (
            isinstance(t, (int, float))
            and not isinstance(t, bool)
            and bool(np.isfinite(t))
            and t > 0
        )
        check_param(name, "temperature", t, ok, "'auto' or a float in the range (0, inf)")
        check_param(name, "credit", self.credit, self.credit in CREDIT_RULES,
                    f"one of {CREDIT_RULES}")  # fmt: skip
        check_param(
            name, "index", self.index, self.index in ix.INDEX_KINDS, f"one of {ix.INDEX_KINDS}"
        )
        check_param(name, "metric", self.metric, self.metric in ix.METRICS, f"one of {ix.METRICS}")

    def fit(
        self, train_embeddings: np.ndarray, ids: Any = None, *, store: str | Path | None = None,
        n_queries: int | None = None, reused: bool = False, progress: bool = False,
    ) -> Valuator:  # fmt: skip
        """Index the training embeddings (n, d). ``ids`` default to row numbers as strings.

        ``n_queries`` (the generated samples to value) and ``reused`` (more will come later)
        let ``index="auto"`` weigh the build against the searches (``search.resolve_params``).

        With ``store`` (a folder) the prepared embeddings kept for re-ranking are written there
        as ``embeddings.npy`` and memory-mapped instead of held in memory; ``save`` to the same
        folder then reuses that file. ``progress``: bars of the index build and tuning.
        """
        self._validate_params()
        out = Path(store) / "embeddings.npy" if store is not None else None
        x = ix.prepare(train_embeddings, self.metric, "training embeddings", out=out)
        n = len(x)
        ids_arr = _as_ids(ids, n, "training")
        if self.k > n:
            raise InputError(
                f"k={self.k} is larger than the training set ({n} items); use k <= {n}.",
                param="k",
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
            n_queries=n_queries,
            reused=reused,
        )
        t0 = time.perf_counter()
        given = [key for key in ("nprobe", "n_candidates") if getattr(self, key) is not None]
        faiss_index, params = ix.build_tuned(
            x, params, self.k, seed=self.random_state, sample=self.recall_sample, fixed=given,
            progress=progress,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        self._fitted = _Fitted(
            faiss_index, x, ids_arr, params, hash_array(x), seconds, CreditRule()
        )
        self._fitted = replace(self._fitted, credit_rule=self._fit_rule())
        return self

    def _fit_rule(self) -> CreditRule:
        """The credit rule, its constants measured on the training set (never on generated)."""
        calibration = None
        if self.credit == "calibrated":
            n = self.n_train_
            calibration = cal.calibrate(self.train_neighbours, n, self.metric,
                                        seed=self.random_state)  # fmt: skip
        return CreditRule(resolve_temperature(self.temperature, calibration), calibration)

    # -- fitted attributes, read-only, named after scikit-learn's trailing underscore --------
    def _state(self) -> _Fitted:
        self._check_fitted()
        return self._fitted

    @property
    def embeddings_(self) -> np.ndarray:
        """(n, d) prepared float32 training vectors (memory-mapped when fitted with a store)."""
        return self._state().embeddings

    @property
    def faiss_index_(self) -> Any:
        """The faiss index over ``embeddings_`` that recalls candidates."""
        return self._state().index

    @property
    def train_ids_(self) -> np.ndarray:
        """The training ids, one per row of ``embeddings_``."""
        return self._state().ids

    @property
    def n_train_(self) -> int:
        return len(self._state().ids)

    @property
    def index_params_(self) -> ix.IndexParams:
        """The resolved (and, for ``auto``, tuned) settings of ``faiss_index_``."""
        return self._state().params

    @property
    def embeddings_sha256_(self) -> str:
        return self._state().embeddings_hash

    @property
    def build_seconds_(self) -> float:
        return self._state().build_seconds

    @property
    def credit_rule_(self) -> CreditRule:
        """The credit rule of this valuator's values, its constants as measured at ``fit``."""
        return self._state().credit_rule

    def train_neighbours(self, rows: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest *other* training items of training ``rows``: (distances, rows)."""
        f = self._state()
        rows = np.asarray(rows, dtype=np.int64)
        kk = min(k + 1, len(f.ids))
        q = np.asarray(f.embeddings[rows], dtype=np.float32)
        d, found = ix.search(f.index, f.embeddings, q, kk, f.params)
        other = found != rows[:, None]
        # an exact duplicate may come first; when the row itself is not listed, drop the last
        missing = other.all(axis=1)
        other[missing, -1] = False
        order = np.argsort(~other, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, order, 1), np.take_along_axis(found, order, 1)

    def attributable_share(self, distances: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        """a_j of generated samples from their (m, k) matches; None under the paper's rule."""
        c = self.credit_rule_.calibration
        if c is None:
            return None
        top = np.asarray(rows)[:, 0]
        uniq, at = np.unique(top, return_inverse=True)
        radius = self.train_neighbours(uniq, 1)[0][:, 0] if len(uniq) else np.empty(0)
        return c.share(np.asarray(distances)[:, 0], radius[at.ravel()])

    def generated_neighbours(
        self, generated_embeddings: np.ndarray, *, progress: bool = False
    ) -> dn.GeneratedNeighbours:
        """Each training item's ``density.NEIGHBOURS`` nearest generated samples (exact)."""
        f = self._state()
        q = self._prepare_queries(generated_embeddings)
        k = min(dn.NEIGHBOURS, len(q))
        block = 1 << 14
        d = np.empty((len(f.ids), k))
        r = np.empty((len(f.ids), k), dtype=np.int64)
        with progress_bar(len(f.ids), "density of generated samples", progress=progress) as bar:
            for s in range(0, len(f.ids), block):
                x = np.asarray(f.embeddings[s : s + block], dtype=np.float32)
                d[s : s + len(x)], r[s : s + len(x)] = ix.exact_search(q, x, k, self.metric)
                bar.update(len(x))
        return dn.pad(d, r, dn.NEIGHBOURS)

    # -- queries: they never change the valuator ---------------------------------------------
    def kneighbors(self, generated_embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (distances, training rows) of each generated sample, after exact re-rank."""
        f = self._state()
        q = self._prepare_queries(generated_embeddings)
        return ix.search(f.index, f.embeddings, q, self.k, f.params)

    def candidates(
        self, generated_embeddings: np.ndarray, n_candidates: int, *, exact: bool = True,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The ``n_candidates`` (K') best training rows of each generated sample, not cut to k.

        ``exact`` orders and measures them by the exact distance, as ``kneighbors`` does;
        without it they are the recall index's own top K' with its own (for PQ: approximate)
        distances, in the valuator's metric. Missing candidates have row -1 and distance inf.
        """
        f = self._state()
        q = self._prepare_queries(generated_embeddings)
        kp = min(len(f.ids), max(1, int(n_candidates)))
        if exact:
            return ix.search(f.index, f.embeddings, q, kp, f.params, progress=progress,
                             label=f"search top-{kp} candidates")  # fmt: skip
        return ix.index_search(f.index, q, kp, f.params)

    def _prepare_queries(self, generated_embeddings: np.ndarray) -> np.ndarray:
        f = self._state()
        q = ix.prepare(generated_embeddings, self.metric, "generated embeddings")
        check_same_dim(f.embeddings.shape[1], q.shape[1])
        return q

    def value(
        self,
        generated_embeddings: np.ndarray,
        quality: Any = None,
        ids: Any = None,
        *,
        search: SearchHook | None = None,
        progress: bool = False,
    ) -> ValuationResult:
        """Value the training set against generated samples (m, d); q_j defaults to 1.

        ``search(valuator, prepared_queries, k) -> (distances, rows)`` replaces the local
        top-k search (the Ray engine spreads it over index shards); everything else is the same.
        ``progress``: bars of the search and of the generated-sample density.
        """
        f = self._state()
        q = self._prepare_queries(generated_embeddings)
        gen_ids = _as_ids(ids, len(q), "generated")
        qual = check_quality(quality, len(q), gen_ids)
        t0 = time.perf_counter()
        if search is None:
            dist, rows = ix.search(f.index, f.embeddings, q, self.k, f.params, progress=progress)
        else:
            with progress_bar(len(q), "search top-k", progress=progress, unit="query") as bar:
                dist, rows = search(self, q, self.k)
                bar.update(len(q))
        t_search = time.perf_counter() - t0
        share = self.attributable_share(dist, rows)
        credit = f.credit_rule.assign(dist, rows, len(f.ids), qual, share)
        t0 = time.perf_counter()
        neighbours = (
            None
            if share is None
            else self.generated_neighbours(generated_embeddings, progress=progress)
        )
        t_density = time.perf_counter() - t0
        t0 = time.perf_counter()
        recall, n_recall = ix.measure_recall(
            f.index, f.embeddings, q, self.k, f.params, self.recall_sample, self.random_state
        )
        return ValuationResult(
            train_ids=f.ids,
            generated_ids=gen_ids,
            values=credit.values,
            n_matches=credit.n_matches,
            distances=dist,
            indices=rows,
            credits=credit.credits,
            quality=qual,
            config=self.describe(),
            recall=recall,
            recall_queries=n_recall,
            timings={
                "index_build_s": f.build_seconds,
                "search_s": t_search,
                "density_s": t_density,
                "recall_s": time.perf_counter() - t0,
            },
            share=share,
            neighbours=neighbours,
        ).with_density()

    def describe(self) -> dict[str, Any]:
        """The resolved configuration: parameters plus the index actually built."""
        f = self._state()
        return {
            "valuator": self.get_params(),
            "index": f.params.to_dict(),
            "distance": _DISTANCE_DOC[self.metric],
            "embeddings_sha256": f.embeddings_hash,
            "credit": f.credit_rule.describe(),
        }

    # -- on disk ----------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the fitted valuator to a folder: faiss index, embeddings, ids and JSON.

        ``extra`` adds keys to ``index.json`` (a run records its source hash there).
        """
        import faiss

        f = self._state()
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
        # an index saved before the calibrated rule existed was made with the paper's
        self = cls(**{"credit": "paper", **meta["valuator"]})
        params = ix.IndexParams(**meta["index"])
        index = faiss.read_index(str(path / "index.faiss"))
        rule = CreditRule.from_description(meta.get("credit") or {"credit": "paper",
                                           "temperature": self.temperature})  # fmt: skip
        self._fitted = _Fitted(
            index, x, ids, params, meta["embeddings_sha256"], meta["build_s"], rule
        )
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
