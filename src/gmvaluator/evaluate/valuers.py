"""The valuers an evaluation compares: the pipeline under test and its baselines.

A ``ValuerSpec`` names one configuration: embedder, index, distance, temperature and whether
quality weights the credit; ``random=True`` is the chance baseline (k training items drawn at
random per generated sample, equal credit). ``value_images`` turns uint8 images into a
``ValuationResult`` with any spec, so every criterion runs the same way on every baseline.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from gmvaluator._io import hash_array
from gmvaluator.errors import InputError
from gmvaluator.result import ValuationResult
from gmvaluator.value import Valuator, softmax_credit


@dataclass(frozen=True)
class ValuerSpec:
    name: str
    embedder: str = "pixels"
    index: str = "auto"
    metric: str = "cosine"
    temperature: float = 1.0
    quality: bool = False
    random: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def baselines(default_embedder: str = "pixels") -> list[ValuerSpec]:
    """The default pipeline and the baselines named by the evaluation plan."""
    base = ValuerSpec("default", embedder=default_embedder)
    specs = [
        base,
        replace(base, name="exact-nn", index="exact"),
        replace(base, name="ivfpq", index="ivfpq"),
        replace(base, name="sqeuclidean", metric="sqeuclidean"),
        replace(base, name="quality-on", quality=True),
        replace(base, name="T=0.1", temperature=0.1),
        replace(base, name="T=0.01", temperature=0.01),
        ValuerSpec("random", random=True),
    ]
    if default_embedder != "pixels":
        specs.insert(1, replace(base, name="raw-pixels", embedder="pixels"))
    return specs


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
) -> ValuationResult:
    """Value ``train_images`` against ``generated_images`` with one valuer configuration.

    ``quality`` (one score per generated sample) is used when ``spec.quality`` is set; without
    it the sharpness stand-in is computed.

    ``timings`` of the result gain ``embed_train_s`` and ``embed_generated_s`` (0 when cached).
    """
    if k > len(train_images):
        raise InputError(f"k={k} exceeds the {len(train_images)} training images; lower k.")
    if spec.random:
        return random_result(len(train_images), len(generated_images), k, seed)
    train, t_train = embed_images(train_images, spec.embedder)
    gen, t_gen = embed_images(generated_images, spec.embedder)
    if quality is None and spec.quality:
        quality = sharpness_quality(generated_images)
    valuator = Valuator(
        k=k,
        index=spec.index,
        metric=spec.metric,
        temperature=spec.temperature,
        random_state=seed,
        recall_sample=200,
    ).fit(train)
    result = valuator.value(gen, quality=quality if spec.quality else None)
    timings = {**result.timings, "embed_train_s": t_train, "embed_generated_s": t_gen}
    return replace(result, timings=timings, config={**result.config, "spec": spec.to_dict()})


def random_result(n: int, m: int, k: int, seed: int = 0) -> ValuationResult:
    """The chance baseline: k distinct random training rows per generated sample, equal credit."""
    rng = np.random.default_rng(seed)
    rows = np.argsort(rng.random((m, n)), axis=1)[:, :k]
    dist = np.zeros((m, k))
    credit = softmax_credit(dist)
    return ValuationResult(
        train_ids=np.array([str(i) for i in range(n)]),
        generated_ids=np.array([str(j) for j in range(m)]),
        values=np.bincount(rows.ravel(), weights=credit.ravel(), minlength=n),
        n_matches=np.bincount(rows.ravel(), minlength=n),
        distances=dist,
        indices=rows,
        credits=credit,
        quality=np.ones(m),
        config={"spec": ValuerSpec("random", random=True).to_dict()},
        recall=1.0,
        recall_queries=0,
    )
