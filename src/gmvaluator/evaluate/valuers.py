"""The valuers an evaluation compares: the pipeline under test and its baselines.

A ``ValuerSpec`` names one configuration: embedder, index (and its PQ settings), distance,
re-rank, temperature and whether quality weights the credit; ``random=True`` is the chance
baseline (k training items drawn at random per generated sample, equal credit).
``value_images`` turns uint8 images into a ``ValuationResult`` with any spec, so every criterion
runs the same way on every baseline.

``rerank="none"`` keeps the recall index's own top k and its own distances (for PQ: distances
of the compressed codes), as a run with ``--rerank none`` does; ``"exact"`` re-ranks K'
candidates by the exact distance (the default).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from gmvaluator import search as ix
from gmvaluator.config import ValueConfig
from gmvaluator.core.credit import CreditRule
from gmvaluator.core.result import ValuationResult
from gmvaluator.core.valuator import Valuator
from gmvaluator.errors import InputError, check_param
from gmvaluator.files import hash_array
from gmvaluator.modelaware.rescore import RescoreSettings, rescore

#: The one declaration of the settings' defaults, shared with ``Valuator``.
_DEFAULTS = ValueConfig()


@dataclass(frozen=True)
class ValuerSpec:
    """One valuer of an evaluation: its embedder, re-rank and quality weighting, and the
    ``Valuator`` parameters it varies (the others, k and the seed, come from the evaluation).
    """

    name: str
    embedder: str = "pixels"
    # fields named after a Valuator parameter are passed to it (``valuator_params``), with its
    # defaults; the PQ / IVF ones left None resolve as ``search.resolve_params`` documents
    index: str = _DEFAULTS.index
    metric: str = _DEFAULTS.metric
    temperature: float | str = _DEFAULTS.temperature
    credit: str = _DEFAULTS.credit
    quality: bool = False
    random: bool = False
    rerank: str = _DEFAULTS.rerank
    m: int | None = _DEFAULTS.m
    nbits: int | None = _DEFAULTS.nbits
    nlist: int | None = _DEFAULTS.nlist
    nprobe: int | None = _DEFAULTS.nprobe
    #: the model-aware re-score of the shortlist (None: training-free); needs the generator
    rescore: RescoreSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def valuator_params(self) -> dict[str, Any]:
        """The fields of this spec that are ``Valuator`` parameters, by name."""
        return {name: getattr(self, name) for name in Valuator.param_names() if hasattr(self, name)}


def baselines(default_embedder: str = "pixels") -> list[ValuerSpec]:
    """The default pipeline and the baselines named by the evaluation plan."""
    base = ValuerSpec("default", embedder=default_embedder)
    specs = [
        base,
        replace(base, name="exact-nn", index="exact"),
        replace(base, name="ivfpq", index="ivfpq"),
        replace(base, name="rerank-none", index="ivfpq", rerank="none"),
        replace(base, name="sqeuclidean", metric="sqeuclidean"),
        replace(base, name="quality-on", quality=True),
        replace(base, name="paper", credit="paper"),
        replace(base, name="paper T=0.1", credit="paper", temperature=0.1),
        replace(base, name="paper T=0.01", credit="paper", temperature=0.01),
        ValuerSpec("random", random=True),
    ]
    if default_embedder != "pixels":
        specs.insert(1, replace(base, name="raw-pixels", embedder="pixels"))
    return specs


RERANKS = ("exact", "none")


def sensitivity_variants(embedders: Any = ("pixels",)) -> list[ValuerSpec]:
    """The variants of the sensitivity study: PQ settings and re-rank on the first embedder,
    exact search on every embedder, and the random baseline.

    ``exact:<embedder>`` is exact search (the reference recall is measured against); ``pqMxB``
    plain PQ with M sub-quantizers of B bits; ``ivfL-...-nprobeP`` IVF-PQ with L lists, P of
    them probed; ``ivfpq-default`` IVF-PQ with the defaults of ``search.resolve_params``. A
    ``+rerank`` suffix re-ranks K' = max(10 k, 100) candidates exactly; without it the index's
    own top k and distances are used. M = 8 and 16 divide the dimensions of every embedder here.
    """
    embedders = list(embedders)
    if not embedders:
        raise InputError("give at least one embedder for the sensitivity study, e.g. pixels.")
    first = embedders[0]
    pq = ValuerSpec("pq", embedder=first, index="pq", m=8, nbits=8, rerank="none")
    ivf = replace(pq, index="ivfpq", nlist=4, nprobe=1)
    default = ValuerSpec("ivfpq-default", embedder=first, index="ivfpq", rerank="none")
    specs = [
        ValuerSpec(f"exact:{first}", embedder=first, index="exact"),
        replace(pq, name="pq8x8+rerank", rerank="exact"),
        replace(pq, name="pq8x8"),
        replace(pq, name="pq16x8", m=16),
        replace(pq, name="pq8x4", nbits=4),
        replace(ivf, name="ivf4-pq8x8-nprobe1+rerank", rerank="exact"),
        replace(ivf, name="ivf4-pq8x8-nprobe1"),
        replace(default, name="ivfpq-default+rerank", rerank="exact"),
        default,
    ]
    specs += [ValuerSpec(f"exact:{e}", embedder=e, index="exact") for e in embedders[1:]]
    return [*specs, ValuerSpec("random", random=True)]


_CACHE: dict[tuple[str, str], np.ndarray] = {}


def embed_images(images: np.ndarray, embedder: str) -> tuple[np.ndarray, float]:
    """Embed uint8 (N, H, W) images; returns (vectors, seconds). Cached within the process."""
    key = (embedder, hash_array(np.ascontiguousarray(images)))
    if key in _CACHE:
        return _CACHE[key], 0.0
    from gmvaluator.embed import embed_dataset, get_embedder
    from gmvaluator.sources.base import Dataset, ImageItems

    options = {"size": int(images.shape[1])} if embedder == "pixels" else {}
    emb = get_embedder(embedder, **options)
    ds = Dataset(
        name="evaluation images",
        kind="image",
        ids=np.array([str(i) for i in range(len(images))]),
        items=ImageItems(array=images),
    )
    t0 = time.perf_counter()
    vectors = embed_dataset(ds, emb, batch_size=256, progress=False)
    seconds = time.perf_counter() - t0
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = vectors
    return vectors, seconds


def clear_cache() -> None:
    """Forget cached embeddings (C4 times embedding from scratch)."""
    _CACHE.clear()


def sharpness_quality(images: np.ndarray) -> np.ndarray:
    """A no-reference quality stand-in: variance of the Laplacian, scaled to mean 1.

    Blurry generations (a VAE's usual failure) score low. It needs no weights; MANIQA or BRISQUE
    scores can replace it through ``value_images(quality=...)``.
    """
    x = np.asarray(images, dtype=np.float64) / 255.0
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    lap = pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:] - 4 * x
    v = lap.reshape(len(x), -1).var(axis=1)
    return v / v.mean() if v.mean() > 0 else np.ones(len(x))


def value_images(
    spec: ValuerSpec,
    train_images: np.ndarray,
    generated_images: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    quality: np.ndarray | None = None,
    model: Any = None,
    train_labels: np.ndarray | None = None,
    generated_labels: np.ndarray | None = None,
) -> ValuationResult:
    """Value ``train_images`` against ``generated_images`` with one valuer configuration.

    ``quality`` (one score per generated sample) is used when ``spec.quality`` is set; without
    it the sharpness stand-in is computed. A model-aware spec (``spec.rescore``) needs
    ``model``, the generator (a reference generator or a list of them, for an ensemble), and
    the labels of both sides when the generator is class-conditional.

    ``timings`` of the result gain ``embed_train_s`` and ``embed_generated_s`` (0 when cached).
    """
    if k > len(train_images):
        raise InputError(
            f"k={k} exceeds the {len(train_images)} training images; lower k.", param="k"
        )
    check_param("ValuerSpec", "rerank", spec.rerank, spec.rerank in RERANKS, f"one of {RERANKS}")
    if spec.random:
        return random_result(len(train_images), len(generated_images), k, seed)
    train, t_train = embed_images(train_images, spec.embedder)
    gen, t_gen = embed_images(generated_images, spec.embedder)
    if quality is None and spec.quality:
        quality = sharpness_quality(generated_images)
    valuator = Valuator(k=k, random_state=seed, recall_sample=200, **spec.valuator_params())
    valuator.fit(train)
    result = valuator.value(gen, quality=quality if spec.quality else None)
    if spec.rerank == "none":
        result = _without_rerank(result, valuator, gen)
    if spec.rescore is not None:
        result = _rescored(spec.rescore, valuator, result, gen, model, (train_images,
                           generated_images), (train_labels, generated_labels))  # fmt: skip
    timings = {**result.timings, "embed_train_s": t_train, "embed_generated_s": t_gen}
    return replace(result, timings=timings, config={**result.config, "spec": spec.to_dict()})


_STORE: list[Any] = []


def _rescored(
    settings: RescoreSettings,
    valuator: Valuator,
    result: ValuationResult,
    generated: np.ndarray,
    model: Any,
    images: tuple[np.ndarray, np.ndarray],
    labels: tuple[np.ndarray | None, np.ndarray | None],
) -> ValuationResult:
    """``result`` re-scored by the generator's gradients (features kept for the process)."""
    import tempfile

    from gmvaluator.sources.base import Dataset, ImageItems

    if model is None:
        raise InputError("a model-aware valuer needs the generator: pass model=.", param="model")
    models = model if isinstance(model, (list, tuple)) else [model]
    if not _STORE:
        _STORE.append(tempfile.TemporaryDirectory(prefix="gmvaluator-gradients-"))
    train, gen = (
        Dataset(
            name=name,
            kind="image",
            ids=np.array([str(i) for i in range(len(x))]),
            items=ImageItems(array=x),
            labels=y,
        )
        for name, x, y in zip(("training", "generated"), images, labels, strict=True)
    )
    gms = [m.gradient_model() if hasattr(m, "gradient_model") else m for m in models]
    return rescore(valuator, result, generated, gms, train, gen, settings, _STORE[0].name)


def _without_rerank(
    result: ValuationResult, valuator: Valuator, generated: np.ndarray
) -> ValuationResult:
    """``result`` with the recall index's own top k (no exact re-rank); recall re-measured.

    The recall stored with the result is then recall@k of these lists against exact search,
    on the same sample of generated samples that ``Valuator.value`` measures.
    """
    from types import SimpleNamespace

    from gmvaluator.core.rerank import rerank_result

    out = rerank_result(result, valuator, None, SimpleNamespace(vectors=generated), "none")
    rows = ix.recall_rows(len(generated), valuator.recall_sample, valuator.random_state)
    q = ix.prepare(generated[rows], valuator.metric, "generated embeddings")
    _, exact = ix.exact_search(valuator.embeddings_, q, valuator.k, valuator.metric)
    return replace(out, recall=ix.recall_at_k(out.indices[rows], exact), recall_queries=len(rows))


def random_result(n: int, m: int, k: int, seed: int = 0) -> ValuationResult:
    """The chance baseline: k distinct random training rows per generated sample, equal credit."""
    rng = np.random.default_rng(seed)
    rows = np.argsort(rng.random((m, n)), axis=1)[:, :k]
    dist = np.zeros((m, k))
    credit = CreditRule().assign(dist, rows, n)  # equal distances: equal credit
    return ValuationResult(
        train_ids=np.array([str(i) for i in range(n)]),
        generated_ids=np.array([str(j) for j in range(m)]),
        values=credit.values,
        n_matches=credit.n_matches,
        distances=dist,
        indices=rows,
        credits=credit.credits,
        quality=np.ones(m),
        config={"spec": ValuerSpec("random", random=True).to_dict()},
        recall=1.0,
        recall_queries=0,
    )
