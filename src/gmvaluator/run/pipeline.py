"""Stages of a valuation run and the run folder that connects them.

    RUN/config.json                 resolved settings (what decides the numbers)
    RUN/embeddings/{train,generated}.npy + .json   vectors, with source hash and embedder
    RUN/index/                      the fitted Valuator (faiss index, embeddings, index.json)
    RUN/values.parquet              one row per training item
    RUN/attributions.parquet        one row per generated sample and match
    RUN/run.json                    versions, input hashes, counts, timings, recall

Each stage reuses its output when the JSON next to it matches what it would compute, so a
re-run resumes finished work; asking for different settings in an existing run is an error.
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
from gmvaluator._faults import checkpoint
from gmvaluator._io import atomic_path, read_json, remove_stale_temps, write_json
from gmvaluator.config import ValueConfig, diff_settings
from gmvaluator.core.result import ValuationResult
from gmvaluator.core.valuator import Valuator, check_same_dim
from gmvaluator.errors import ResumeError
from gmvaluator.quality.registry import read_quality  # noqa: F401  (its old home)
from gmvaluator.skips import SkipLog, collect_skips, source_label
from gmvaluator.sources import Dataset, content_hash, load_source

if TYPE_CHECKING:
    from gmvaluator.rights.accounting import AccountingOptions, RunAccounting


@dataclass
class Embedded:
    """A source with its embeddings and the hash of its content."""

    dataset: Dataset
    vectors: np.ndarray
    source_hash: str
    seconds: float
    reused: bool
    cache: dict[str, Any] | None = None  # embedding-cache folder, items read from it, added


@dataclass
class RunOutcome:
    run_dir: Path
    result: ValuationResult
    train: Embedded
    generated: Embedded
    timings: dict[str, float] = field(default_factory=dict)
    n_skipped: int = 0


def check_run_config(run_dir: Path, settings: dict[str, Any], overwrite: bool = False) -> None:
    """Refuse to reuse a run folder made with other settings, naming the keys that differ."""
    if run_dir.is_dir():
        remove_stale_temps(run_dir)
    path = run_dir / "config.json"
    if path.is_file() and not overwrite:
        old = read_json(path)
        changed = diff_settings(old, settings)
        if changed:
            raise ResumeError(
                f"run folder {run_dir} was made with different settings: {', '.join(changed)}. "
                "Use a new --out folder, or --overwrite to replace it."
            )
    write_json(path, settings)


def embed_stage(
    spec: str,
    role: str,
    cfg: ValueConfig,
    run_dir: Path | None,
    progress: bool = True,
    cache: str | Path | None = None,
) -> Embedded:
    """Read ``spec`` and embed it into ``RUN/embeddings/<role>/`` shards (reusing finished ones).

    Under ``--on-error skip`` the returned dataset holds only the items that embedded.
    ``cache`` is an embedding-cache folder shared by runs (``gmvaluator.embed.cache``).
    """
    from gmvaluator.embed import default_embedder, get_embedder
    from gmvaluator.embed.cache import open_cache
    from gmvaluator.embed.shards import embed_sharded

    with source_label(role):
        ds = load_source(spec, text_column=cfg.text_column)
        source_hash = content_hash(ds)
        embedder = get_embedder(cfg.embedder or default_embedder(ds.kind))
        meta = {"role": role, "source": spec, "source_sha256": source_hash, "n": len(ds)}
        folder = (run_dir / "embeddings" / role) if run_dir else _scratch_folder()
        store = open_cache(cache, embedder)
        emb = embed_sharded(
            ds,
            embedder,
            folder,
            meta,
            shard_size=cfg.shard_size,
            batch_size=cfg.batch_size,
            metric=cfg.metric,
            progress=progress,
            cache=store,
            dtype=cfg.embedding_dtype,
        )
    if len(emb.kept) < len(ds):
        ds = ds.take(emb.kept)
    reused = emb.reused_shards == emb.n_shards
    stats = None
    if store is not None:
        stats = {"folder": str(store.folder), "hits": store.hits, "added": store.added}
    return Embedded(ds, emb.vectors, source_hash, emb.seconds, reused=reused, cache=stats)


def _scratch_folder() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="gmvaluator-embed-"))


def index_stage(train: Embedded, cfg: ValueConfig, run_dir: Path | None) -> tuple[Valuator, float]:
    """Fit the valuator on the training embeddings, or reopen ``RUN/index`` when it matches."""
    folder = run_dir / "index" if run_dir else None
    params = cfg.valuator_params()
    if folder is not None and (folder / "index.json").is_file():
        meta = read_json(folder / "index.json")
        if meta.get("valuator") == params and meta.get("source_sha256") == train.source_hash:
            return Valuator.load(folder), 0.0
    t0 = time.perf_counter()
    valuator = Valuator(**params).fit(train.vectors, ids=train.dataset.ids, store=folder)
    seconds = time.perf_counter() - t0
    if folder is not None:
        valuator.save(folder, extra={"source_sha256": train.source_hash})
    return valuator, seconds


def value_stage(
    valuator: Valuator,
    train: Embedded,
    generated: Embedded,
    quality: np.ndarray | None,
    run_dir: Path | None,
    accounting: RunAccounting | None = None,
    rerank: str | None = None,
    n_candidates: int | None = None,
    engine: Any = None,
) -> ValuationResult:
    """Value and write ``values.parquet`` and ``attributions.parquet``.

    ``engine`` (e.g. ``gmvaluator.engines.ray.RayEngine``) runs the search instead of the
    valuator itself; the result is the same.

    ``rerank`` (see ``gmvaluator.core.rerank``) re-measures the candidates; d_ij is its distance.

    ``accounting`` adds licence / opt-out columns, near-copy flags, ``contributors.parquet``
    and the ledger (see ``gmvaluator.rights.accounting``).
    """
    if engine is not None:
        result = engine.value(valuator, generated.vectors, quality, ids=generated.dataset.ids)
    else:
        result = valuator.value(generated.vectors, quality=quality, ids=generated.dataset.ids)
    if rerank is not None:
        from gmvaluator.core.rerank import rerank_result

        result = rerank_result(
            result, valuator, train, generated, rerank, n_candidates=n_candidates
        )
    ds = train.dataset
    columns = {"label": ds.labels, "contributor": ds.contributors}
    if accounting is not None:
        result = accounting.apply(
            result, valuator, generated.dataset, run_dir, generated_vectors=generated.vectors
        )
        columns = accounting.columns(ds.labels)
    if run_dir is not None:
        result.save(run_dir, **columns)
        if accounting is not None:
            accounting.write(run_dir, result, generated.dataset, valuator)
    return result


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
    engine: Any = None,
) -> RunOutcome:
    """The whole ``gmvaluator value`` job: embed both sources, index, value, record.

    ``engine`` (``gmvaluator.engines.ray.ray_engine``) embeds and searches on a Ray cluster.

    ``cache`` is a folder of embeddings shared by runs (None: no cache); items found there
    are not embedded again.

    ``on_error="skip"`` drops unusable items instead of stopping, and lists each one with the
    reason in ``RUN/skipped.csv``.
    """
    with collect_skips(on_error) as skips:
        from gmvaluator.core.rerank import check_rerank
        from gmvaluator.quality import describe_quality
        from gmvaluator.rights.accounting import AccountingOptions, RunAccounting

        opts = accounting or AccountingOptions()
        t_start = time.perf_counter()
        run = Path(run_dir) if run_dir is not None else None
        settings = {"train": train_spec, "generated": generated_spec, "quality": _opt(quality)}
        settings.update(cfg.to_dict())
        settings.update(opts.settings())
        check_rerank(cfg.rerank)  # a bad name or a missing model fails before any embedding
        quality_info = describe_quality("none" if quality is None else quality, cfg.quality_norm)
        if run is not None:
            check_run_config(run, settings, overwrite)
        embed = embed_stage if engine is None else engine.embed_stage
        train = embed(train_spec, "train", cfg, run, progress, cache)
        generated = embed(generated_spec, "generated", cfg, run, progress, cache)
        if run is not None and skips.mode == "skip":
            write_skipped(run / "skipped.csv", skips)
        check_same_dim(train.vectors.shape[1], generated.vectors.shape[1])
        acct = RunAccounting.start(opts, train.dataset, settings, train.source_hash,
                                   cache_root=None if cache is None else Path(cache))  # fmt: skip
        valuator, t_index = index_stage(acct.index_view(train), cfg, run)
        q = None
        if quality is not None:
            from gmvaluator.quality import quality_scores

            q = quality_scores(quality, generated.dataset, cfg.quality_norm, progress=progress)
        t0 = time.perf_counter()
        result = value_stage(
            valuator, train, generated, q, run, acct, cfg.rerank, cfg.n_candidates, engine
        )
        timings = {
            "embed_train_s": 0.0 if train.reused else train.seconds,
            "embed_generated_s": 0.0 if generated.reused else generated.seconds,
            "index_s": t_index,
            "value_s": time.perf_counter() - t0,
            "total_s": time.perf_counter() - t_start,
        }
        if run is not None:
            record = run_record(result, train, generated, timings, settings)
            record["skipped"] = len(skips)
            record["quality"] = quality_info
            record["embedding_cache"] = {"train": train.cache, "generated": generated.cache}
            record.update(acct.record(result))
            checkpoint("before-run-json")
            write_json(run / "run.json", record)
        return RunOutcome(run or Path("."), result, train, generated, timings, n_skipped=len(skips))


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
) -> dict[str, Any]:
    """What ``run.json`` says: versions, input hashes, counts, timings and index recall."""
    return {
        "gmvaluator": __version__,
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "inputs": {
            "train": {
                "source": settings["train"],
                "sha256": train.source_hash,
                "n": len(train.dataset),
            },
            "generated": {
                "source": settings["generated"],
                "sha256": generated.source_hash,
                "n": len(generated.dataset),
            },
        },
        "counts": result.summary(),
        "index": result.config.get("index"),
        "recall": {"recall_at_k": result.recall, "k": result.k, "queries": result.recall_queries},
        "distance": result.config.get("distance"),
        "rerank": result.config.get("rerank"),
        "timings": {**timings, **{f"valuator_{k}": v for k, v in result.timings.items()}},
        "reused": {"embed_train": train.reused, "embed_generated": generated.reused},
    }


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
