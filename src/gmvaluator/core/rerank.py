"""Re-rank stage: the finer distance d_ij that enters the formula.

The recall index returns K' candidates per generated sample; a re-ranker measures them again
and keeps the k nearest as P_j. Methods:

    none            the recall index's own distance (approximate for PQ), no second look
    exact           the exact distance on the stored embeddings (the default; done by the
                    Valuator itself)
    sscd            1 - cosine of SSCD copy-detection descriptors (``sscd-distilled``: of the
                    distilled model), computed only for the generated samples and the training
                    items among their candidates; needs image sources
    lpips, dreamsim perceptual distances from local weights files (``gmvaluator.embed.perceptual``:
                    LPIPS in plain torch, DreamSim through its package)

``rerank_result`` returns the result with the new matches, distances, credits and values, and
records the method in ``config["rerank"]`` and the distance in ``config["distance"]``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from gmvaluator.core.result import ValuationResult
from gmvaluator.core.valuator import Valuator
from gmvaluator.env import DREAMSIM_WEIGHTS, LPIPS_WEIGHTS, declared
from gmvaluator.errors import InputError, MissingDependencyError, check_param
from gmvaluator.progress import bar as progress_bar
from gmvaluator.search import check_complete, top_k

RERANKERS = ("none", "exact", "sscd", "sscd-distilled", "lpips", "dreamsim")
WEIGHTS_ENV = {"lpips": LPIPS_WEIGHTS.name, "dreamsim": DREAMSIM_WEIGHTS.name}
_DISTANCE_DOC = {
    "sscd": "1 - cosine similarity of SSCD descriptors (sscd_disc_mixup, int8 ONNX)",
    "sscd-distilled": "1 - cosine similarity of distilled SSCD descriptors (ONNX)",
    "lpips": "LPIPS v0.1 perceptual distance (AlexNet backbone, images at 224 x 224)",
    "dreamsim": "DreamSim perceptual distance",
}


def check_rerank(method: str) -> None:
    """Fail early (before any embedding) on an unknown method or a missing dependency."""
    check_param("rerank", "method", method, method in RERANKERS, f"one of {RERANKERS}")
    if method in ("sscd", "sscd-distilled"):
        from gmvaluator.embed import get_embedder

        get_embedder(method)
    elif method == "lpips":
        from gmvaluator.embed.perceptual import LpipsDistance

        LpipsDistance()
    elif method == "dreamsim":
        perceptual_weights(method)
        from gmvaluator.embed.deps import require

        require("dreamsim", "dreamsim", "rerank='dreamsim'")


def default_candidates(k: int, n_train: int) -> int:
    """K' for a perceptual re-rank when none is given: max(10 k, 100), at most n_train."""
    return min(n_train, max(10 * k, 100))


def rerank_result(
    result: ValuationResult,
    valuator: Valuator,
    train: Any,
    generated: Any,
    method: str = "exact",
    *,
    n_candidates: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> ValuationResult:
    """``result`` (from ``valuator.value(generated.vectors)``) with P_j re-ranked by ``method``.

    ``train`` and ``generated`` are the embedded sources (``pipeline.Embedded``); their items
    are only read by the perceptual methods, for the candidates alone.
    """
    check_rerank(method)
    info: dict[str, Any] = {"method": method}
    if method == "exact":
        info["n_candidates"] = valuator.index_params_.n_candidates
        return _with_config(result, info, result.config.get("distance"))
    dist, rows, info["n_candidates"] = rerank_matches(
        valuator, train, generated, method, n_candidates=n_candidates, batch_size=batch_size,
        progress=progress,
    )  # fmt: skip
    doc = _DISTANCE_DOC.get(method)
    if method == "none":
        doc = f"recall index distance ({result.config.get('distance')}; approximate for PQ)"
    credit = valuator.credit_rule_.assign(
        dist, rows, len(result.train_ids), result.quality, result.share
    )
    out = dataclasses.replace(
        result,
        distances=dist,
        indices=rows,
        credits=credit.credits,
        values=credit.values,
        n_matches=credit.n_matches,
    )
    return _with_config(out, info, doc)


def rerank_matches(
    valuator: Valuator,
    train: Any,
    generated: Any,
    method: str,
    *,
    n_candidates: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
    describe: Any = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The k matches of each generated sample by ``method`` (not ``exact``, which the valuator
    does itself): (m, k) distances, (m, k) training rows and the K' candidates compared.

    ``describe(rows)``, when given, supplies the SSCD descriptors of training source rows
    (e.g. a ``nearcopy.RowDescriptors`` that keeps them between calls).
    """
    k = valuator.k
    if method == "none":
        dist, rows = valuator.candidates(generated.vectors, k, exact=False)
        kp = k
    else:
        if train is None:
            raise InputError(
                f"rerank={method!r} reads the candidates' training items; pass the embedded "
                "training source as train.",
                param="rerank",
            )
        kp = n_candidates or default_candidates(k, valuator.n_train_)
        _, cand = valuator.candidates(generated.vectors, kp, exact=True, progress=progress)
        full = _perceptual(method, train, generated, valuator.train_ids_, cand, batch_size,
                           progress, describe)  # fmt: skip
        dist, rows = top_k(full, cand, k)
        kp = int(cand.shape[1])
    check_complete(dist, k, "generated samples")
    return dist, rows, kp


def _with_config(result: ValuationResult, info: dict[str, Any], doc: Any) -> ValuationResult:
    config = {**result.config, "rerank": {**info, "distance": doc}, "distance": doc}
    return dataclasses.replace(result, config=config)


def _perceptual(
    method: str,
    train: Any,
    generated: Any,
    index_ids: np.ndarray,
    cand: np.ndarray,
    batch_size: int,
    progress: bool,
    describe: Any = None,
) -> np.ndarray:
    """(m, K') distances of each generated sample to its candidates by ``method``."""
    for role, emb in (("training", train), ("generated", generated)):
        if emb.dataset.kind != "image":
            raise InputError(
                f"rerank={method!r} compares images, but the {role} source "
                f"{emb.dataset.name!r} holds {emb.dataset.kind} items. Use rerank='exact'.",
                param="rerank",
            )
    # Index rows are rows of the indexed training set, which may be a subset: map by id.
    position = {str(i): r for r, i in enumerate(np.asarray(train.dataset.ids))}
    valid = cand >= 0
    rows = np.unique(cand[valid])
    source_rows = np.array([position[str(index_ids[r])] for r in rows], dtype=np.int64)
    if method in ("sscd", "sscd-distilled"):
        from gmvaluator.embed import get_embedder

        embedder = get_embedder(method)
        g = _embed(embedder, generated.dataset.items, np.arange(len(generated.dataset)),
                   batch_size, progress, "generated")  # fmt: skip
        if describe is not None:
            t = describe(source_rows)
        else:
            t = _embed(embedder, train.dataset.items, source_rows, batch_size, progress,
                       "training")  # fmt: skip
        at = np.searchsorted(rows, np.where(valid, cand, rows[0]))
        sim = np.einsum("md,mkd->mk", g.astype(np.float64), t[at].astype(np.float64))
        return np.where(valid, np.clip(1.0 - sim, 0.0, 2.0), np.inf)
    return _perceptual_pairs(method, train, generated, rows, source_rows, cand, progress)


def _embed(
    embedder: Any, items: Any, rows: np.ndarray, batch_size: int, progress: bool, role: str
) -> np.ndarray:
    out = np.empty((len(rows), embedder.dim), dtype=np.float32)
    desc = f"rerank {role} ({embedder.name})"
    with progress_bar(len(rows), desc, progress=progress) as bar:
        for s in range(0, len(rows), batch_size):
            part = rows[s : s + batch_size]
            out[s : s + len(part)] = embedder.embed_batch([items[int(r)] for r in part])
            bar.update(len(part))
    return out


def perceptual_weights(method: str) -> Path:
    """The local DreamSim weights folder, from its environment variable (LPIPS finds its own
    files: see ``gmvaluator.embed.perceptual``)."""
    env = WEIGHTS_ENV[method]
    path = declared(env).text()
    if not path or not Path(path).exists():
        where = f"{path!r} does not exist" if path else f"{env} is not set"
        raise MissingDependencyError(
            f"rerank={method!r} needs local {method} weights, and {where}. Download them on a "
            f"machine with access (the {method} package's own checkpoint) and set {env}=PATH, "
            "or use rerank='exact' or 'sscd'.",
            param="rerank",
        )
    return Path(path)


def _perceptual_pairs(
    method: str,
    train: Any,
    generated: Any,
    rows: np.ndarray,
    source_rows: np.ndarray,
    cand: np.ndarray,
    progress: bool = False,
) -> np.ndarray:
    """LPIPS / DreamSim distances of each generated image to its candidates."""
    distances = perceptual_model(method)
    position = dict(zip(rows.tolist(), source_rows.tolist(), strict=True))
    out = np.full(cand.shape, np.inf)
    with progress_bar(cand.shape[0], f"rerank ({method})", progress=progress) as bar:
        for j in range(cand.shape[0]):
            valid = np.flatnonzero(cand[j] >= 0)
            others = [train.dataset.items[position[int(c)]] for c in cand[j, valid]]
            out[j, valid] = distances(generated.dataset.items[j], others)
            bar.update(1)
    return out


def perceptual_model(method: str) -> Any:
    """A function (image, list of images) -> their distances to the image, by ``method``."""
    if method == "lpips":
        from gmvaluator.embed.perceptual import LpipsDistance

        return LpipsDistance().distances
    from gmvaluator.embed.perceptual import dreamsim_distance

    dist = dreamsim_distance(perceptual_weights(method))
    return lambda x, ys: np.array([dist(x, y) for y in ys], dtype=np.float64)
