"""The stages of a valuation run: embed both sources, index, value, write, record.

``run_value`` chains them into the run folder (``gmvaluator.run.folder``). Each stage reuses its
output when the JSON next to it matches what it would compute, so a re-run resumes finished
work; asking for different settings in an existing run is an error. An engine
(``gmvaluator.engines``; local unless another is given) embeds and searches; the pipeline calls
only its protocol. ``value_stage``, ``write_stage`` and ``result_record`` also serve an
appended batch (``gmvaluator.run.append``).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gmvaluator import __version__
from gmvaluator.config import SPEED_ONLY, ValueConfig
from gmvaluator.core.result import ValuationResult
from gmvaluator.core.valuator import Valuator, check_same_dim
from gmvaluator.embed.timing import collect_times
from gmvaluator.engines import Embedded, Engine, LocalEngine
from gmvaluator.errors import check_param
from gmvaluator.files import atomic_path, read_json
from gmvaluator.quality.registry import read_quality  # noqa: F401  (its old home)
from gmvaluator.resources import thread_count, use_threads
from gmvaluator.run.folder import RunFolder, writing
from gmvaluator.skips import SkipLog, collect_skips, current
from gmvaluator.sources import Dataset

if TYPE_CHECKING:
    from gmvaluator.rights.accounting import AccountingOptions, RunAccounting

__all__ = ["Embedded", "RunOutcome", "run_value"]


@dataclass
class RunOutcome:
    run_dir: Path
    result: ValuationResult
    train: Embedded
    generated: Embedded
    timings: dict[str, float] = field(default_factory=dict)
    n_skipped: int = 0


def run_value(
    train_spec: str,
    generated_spec: str,
    run_dir: str | Path | None,
    cfg: ValueConfig,
    *,
    quality: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_error: str = "raise",
    accounting: AccountingOptions | None = None,
    cache: str | Path | None = None,
    engine: Engine | None = None,
) -> RunOutcome:
    """The whole ``gmvaluator value`` job: embed both sources, index, value, record.

    ``engine`` embeds and searches (default ``LocalEngine()``; see ``gmvaluator.engines``).
    ``cache`` is a folder of embeddings shared by runs (None: no cache); items found there
    are not embedded again.

    ``on_error="skip"`` drops unusable items instead of stopping, and lists each one with the
    reason in ``RUN/skipped.csv``.
    """
    from gmvaluator.rights.accounting import AccountingOptions, RunAccounting

    engine = engine or LocalEngine()
    opts = accounting or AccountingOptions()
    folder = None if run_dir is None else RunFolder(run_dir)
    run = None if folder is None else folder.path
    threads = use_threads(thread_count(cfg.threads))  # faiss, BLAS and torch; see resources
    with collect_skips(on_error) as skips, writing(folder, (train_spec, generated_spec)), \
            threads, collect_times() as embed_times:  # fmt: skip
        t_start = time.perf_counter()
        settings = run_settings(train_spec, generated_spec, quality, cfg, opts)
        quality_info = check_before_embedding(cfg, quality)
        if folder is not None:
            folder.check_settings(settings, overwrite)
        train, generated = embed_sources(
            engine, train_spec, generated_spec, cfg, folder, progress=progress, cache=cache
        )
        acct = RunAccounting.start(opts, train.dataset, settings, train.source_hash,
                                   cache_root=None if cache is None else Path(cache))  # fmt: skip
        n_queries = planned_queries(len(generated.dataset), cfg.expected_queries)
        valuator, t_index = index_stage(acct.index_view(train), cfg, run, n_queries, progress)
        q = quality_stage(quality, generated.dataset, cfg, progress)
        t0 = time.perf_counter()
        result = value_stage(valuator, train, generated, q, acct, cfg, engine, run, progress)
        if folder is not None:
            columns = acct.columns(train.dataset.labels)
            write_stage(folder, result, result, generated.dataset, valuator, acct, columns)
        timings = {
            "embed_train_s": 0.0 if train.reused else train.seconds,
            "embed_generated_s": 0.0 if generated.reused else generated.seconds,
            "index_s": t_index,
            "value_s": time.perf_counter() - t0,
            "total_s": time.perf_counter() - t_start,
            **embed_times.record(),
        }
        if folder is not None:
            record = run_record(result, train, generated, timings, settings, acct)
            cached = {"train": train.cache, "generated": generated.cache}
            record.update(skipped=len(skips), quality=quality_info, embedding_cache=cached)
            folder.write_record(record)
        return RunOutcome(run or Path("."), result, train, generated, timings, n_skipped=len(skips))


def run_settings(
    train_spec: str,
    generated_spec: str,
    quality: str | Path | None,
    cfg: ValueConfig,
    opts: AccountingOptions,
) -> dict[str, Any]:
    """What ``config.json`` records: every input and setting that changes the numbers."""
    settings = {"train": train_spec, "generated": generated_spec, "quality": _opt(quality)}
    settings.update({k: v for k, v in cfg.to_dict().items() if k not in SPEED_ONLY})
    settings.update(opts.settings())
    return settings


def check_before_embedding(cfg: ValueConfig, quality: str | Path | None) -> dict[str, Any]:
    """Fail before any embedding on a bad re-rank or quality setting; returns what ``run.json``
    says about the quality scores."""
    from gmvaluator.core.rerank import check_rerank
    from gmvaluator.quality import describe_quality

    check_rerank(cfg.rerank)  # a bad name or a missing model fails before any embedding
    planned_queries(1, cfg.expected_queries)
    return describe_quality("none" if quality is None else quality, cfg.quality_norm)


def embed_sources(
    engine: Engine,
    train_spec: str,
    generated_spec: str,
    cfg: ValueConfig,
    folder: RunFolder | None,
    *,
    progress: bool = True,
    cache: str | Path | None = None,
) -> tuple[Embedded, Embedded]:
    """Both sources embedded by ``engine`` (under ``--on-error skip``, the items dropped are
    listed in ``RUN/skipped.csv``), checked to share one dimension."""
    run = None if folder is None else folder.path
    skips = current()
    try:
        train = engine.embed(train_spec, "train", cfg, run, progress, cache)
        generated = engine.embed(generated_spec, "generated", cfg, run, progress, cache)
    finally:  # also when every item was skipped: the error points to this file
        if folder is not None and skips.mode == "skip":
            write_skipped(folder.skipped, skips)
    check_same_dim(train.vectors.shape[1], generated.vectors.shape[1])
    return train, generated


def planned_queries(m: int, expected: int | None) -> int:
    """The queries ``auto`` plans the index for: this run's ``m`` generated samples, or
    ``expected`` (``--expected-queries``, counting later ``--append`` runs and ``serve``)."""
    if expected is None:
        return m
    ok = isinstance(expected, int) and not isinstance(expected, bool) and expected >= 1
    check_param("gmvaluator value", "expected_queries", expected, ok,
                "an int >= 1, the generated samples the index will value in all")  # fmt: skip
    return max(m, expected)


def index_stage(
    train: Embedded, cfg: ValueConfig, run_dir: Path | None, n_queries: int | None = None,
    progress: bool = False,
) -> tuple[Valuator, float]:  # fmt: skip
    """Fit the valuator on the training embeddings, or reopen ``RUN/index`` when it matches.
    ``n_queries``: the generated samples it will value (``auto`` weighs build against search)."""
    folder = None if run_dir is None else RunFolder(run_dir).index
    params = cfg.valuator_params()
    if folder is not None and (folder / "index.json").is_file():
        meta = read_json(folder / "index.json")
        if meta.get("valuator") == params and meta.get("source_sha256") == train.source_hash:
            return Valuator.load(folder), 0.0
    t0 = time.perf_counter()
    valuator = Valuator(**params).fit(
        train.vectors, ids=train.dataset.ids, store=folder, n_queries=n_queries,
        progress=progress,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if folder is not None:
        valuator.save(folder, extra={"source_sha256": train.source_hash})
    return valuator, seconds


def quality_stage(
    quality: str | Path | None, generated: Dataset, cfg: ValueConfig, progress: bool
) -> np.ndarray | None:
    """The quality scores q_j of the generated samples (None: every q_j is 1)."""
    if quality is None:
        return None
    from gmvaluator.quality import quality_scores

    return quality_scores(quality, generated, cfg.quality_norm, progress=progress)


def value_stage(
    valuator: Valuator,
    train: Embedded | None,
    generated: Embedded,
    quality: np.ndarray | None,
    accounting: RunAccounting,
    cfg: ValueConfig,
    engine: Engine,
    run_dir: Path | None,
    progress: bool = False,
) -> ValuationResult:
    """Value ``generated``: the engine's search, the re-rank ``cfg.rerank`` (which makes d_ij;
    see ``gmvaluator.core.rerank``), the model-aware re-score when ``cfg.model`` names a model
    file (``gmvaluator.run.rescore``) and the accounting (every training row, licence and
    opt-out columns, near-copy flags; see ``gmvaluator.rights.accounting``). Writes nothing.

    ``train`` is read only by the perceptual re-ranks, for their candidates' items.
    """
    from gmvaluator.core.rerank import rerank_result

    ids = generated.dataset.ids
    # the local engine's search is the valuator's own, which shows its progress block by block
    hook = None if isinstance(engine, LocalEngine) else engine.search
    result = valuator.value(
        generated.vectors, quality=quality, ids=ids, search=hook, progress=progress
    )
    result = rerank_result(
        result, valuator, train, generated, cfg.rerank, n_candidates=cfg.n_candidates,
        progress=progress,
    )  # fmt: skip
    if cfg.model is not None:
        from gmvaluator.run.rescore import model_stage

        items = accounting.index_items()
        result = model_stage(result, valuator, items, generated.dataset, generated.vectors, cfg,
                             run_dir, progress=progress)  # fmt: skip
    return accounting.apply(
        result, valuator, generated.dataset, run_dir, generated_vectors=generated.vectors,
        progress=progress,
    )  # fmt: skip


def write_stage(
    folder: RunFolder,
    result: ValuationResult,
    batch: ValuationResult,
    generated: Dataset,
    valuator: Valuator,
    accounting: RunAccounting,
    columns: dict[str, Any],
) -> int:
    """Write ``values.parquet`` and ``attributions.parquet`` of the whole ``result`` (with
    ``columns`` beside the values), ``contributors.parquet``, and the ledger rows of ``batch``
    (the generated samples valued now: all of ``result`` in a full run). Returns how many rows
    the ledger added."""
    result.save(folder.path, **columns)
    return accounting.write(folder.path, result, generated, valuator, batch=batch)


def write_skipped(path: Path, skips: SkipLog) -> None:
    """Every skipped item with its source and the reason, as CSV (written atomically)."""
    df = pd.DataFrame(skips.rows, columns=["source", "id", "reason"])
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def run_record(
    result: ValuationResult,
    train: Embedded,
    generated: Embedded,
    timings: dict[str, float],
    settings: dict[str, Any],
    accounting: RunAccounting,
) -> dict[str, Any]:
    """What ``run.json`` says: versions, input hashes, timings and ``result_record``."""
    return {
        "gmvaluator": __version__,
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "inputs": {
            "train": _input(settings["train"], train),
            "generated": _input(settings["generated"], generated),
        },
        "embedder": _embedder_name(settings, train),
        "index": result.config.get("index"),
        "distance": result.config.get("distance"),
        "rerank": result.config.get("rerank"),
        "timings": {**timings, **{f"valuator_{k}": v for k, v in result.timings.items()}},
        "reused": {"embed_train": train.reused, "embed_generated": generated.reused},
        **result_record(result, accounting),
    }


def result_record(result: ValuationResult, accounting: RunAccounting) -> dict[str, Any]:
    """The keys of ``run.json`` that follow the whole result: counts, recall and the accounting
    (rights, near copies, ledger); a full run writes them, and each appended batch anew."""
    return {
        "counts": result.summary(),
        "recall": {"recall_at_k": result.recall, "k": result.k, "queries": result.recall_queries},
        "credit": result.credit_summary(),
        "model_aware": result.config.get("model_aware"),
        **accounting.record(result),
    }


def _embedder_name(settings: dict[str, Any], train: Embedded) -> str:
    """The embedder that ran: the one asked for, or the default for the source kind."""
    from gmvaluator.embed import default_embedder

    return str(settings.get("embedder") or default_embedder(train.dataset.kind))


def _input(spec: str, emb: Embedded) -> dict[str, Any]:
    return {"source": spec, "sha256": emb.source_hash, "n": len(emb.dataset)}


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "numpy",
        "faiss-cpu",
        "pandas",
        "pyarrow",
        "torch",
        "pillow",
        "sentence-transformers",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _opt(path: str | Path | None) -> str | None:
    return None if path is None else str(path)
